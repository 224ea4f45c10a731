#!/usr/bin/env bash
# On a machine with an accelerator (GPU / TPU): measure in under 8 minutes what only such a machine can tell, and
# append it to BENCHMARKS.md (and, when $OUT is set, copy the new section to $OUT/device_check.md).
#
#     bash bench/device_check.sh            # DEVICE_CHECK_BUDGET_S=470 by default: the whole check, all steps
#
# Steps, most important first, each a `python bench/run.py` call (see its docstring) under a timeout cut to the
# budget left; a step that does not finish is recorded as such instead of its table:
#   1. paper256, 'default' precision (TF32 / bf16 passes): synthesis at batch 1, 8, 32; the edit loop at batch 1
#      and 16 (3 steps/layer, scaled to 30): throughput, compile time, share of the matmul and bandwidth ceilings
#   2. f1024, 'default': synthesis at batch 1 and 4, and the largest fwd+bwd batch (doubling up to 64)
#   3. paper256, 'highest' precision (FP32 cores): synthesis at batch 1, 8; the edit loop at batch 16
#   4. f1024, 'default': the edit loop at batch 4 (2 steps/layer, scaled)
# Refuses to run (exit 2) when jax sees no accelerator: CPU numbers belong to `python bench/run.py`.
# For a check of this script itself on CPU: DEVICE_CHECK_ALLOW_CPU=1 DEVICE_CHECK_TARGET=/tmp/x.md (never appends
# CPU numbers to BENCHMARKS.md unless told to).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUDGET=${DEVICE_CHECK_BUDGET_S:-470}
START=$(date +%s)
WORK=$(mktemp -d)
SECTIONS="$WORK/sections.md"
NOTES="$WORK/notes.md"
: > "$SECTIONS"
: > "$NOTES"

backend=$("$PY" -c "import jax; print(jax.default_backend(), jax.devices()[0].device_kind)" 2>/dev/null)
TARGET=${DEVICE_CHECK_TARGET:-BENCHMARKS.md}
case "$backend" in
  "") ok=0 ;;
  cpu*) [ "${DEVICE_CHECK_ALLOW_CPU:-0}" = 1 ] && [ "$TARGET" != BENCHMARKS.md ] && ok=1 || ok=0 ;;
  *) ok=1 ;;
esac
if [ "$ok" != 1 ]; then
  echo "error: no accelerator visible to jax (backend: ${backend:-none}); run python bench/run.py on CPU" >&2
  exit 2
fi

step() {   # step NAME SECONDS ARGS...: one bench/run.py call, its section appended to $SECTIONS
  local name=$1 want=$2 left t rc
  shift 2
  left=$((BUDGET - ($(date +%s) - START)))
  t=$(( want < left ? want : left ))
  if (( t < 30 )); then
    echo "- $name: not run (device-check budget of ${BUDGET} s spent)" >> "$NOTES"
    return
  fi
  echo "== $name (timeout ${t} s)" >&2
  local t0=$(date +%s)
  timeout -k 10 "$t" "$PY" bench/run.py --benchmarks_file="$SECTIONS" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  if (( rc == 0 )); then
    echo "- $name: done in $(( $(date +%s) - t0 )) s" >> "$NOTES"
  else
    {
      echo "- $name: NOT finished (exit $rc after $(( $(date +%s) - t0 )) s; 124 = timeout); what it measured:"
      echo
      echo '```'
      grep -E '^(  |[a-z]+ precision:|[a-z0-9]+: )' "$WORK/$name.log" | tail -n 30
      tail -n 1 "$WORK/$name.log" | grep -vE '^(  |[a-z]+ precision:|[a-z0-9]+: )' | cut -c1-300
      echo '```'
      echo
    } >> "$NOTES"
  fi
}

step paper256_default 150 --matmul_precision=default --configs=paper256 --batches=1,8,32 \
  --intervention_configs=paper256 --intervention_batches=1,16 --intervention_steps=3
step f1024_default 110 --matmul_precision=default --configs=f1024 --batches=1,4 --intervention_configs= \
  --max_batch_configs=f1024 --max_batch_limit=64
step paper256_highest 100 --matmul_precision=highest --configs=paper256 --batches=1,8 \
  --intervention_configs=paper256 --intervention_batches=16 --intervention_steps=3
step f1024_edit_loop 110 --matmul_precision=default --configs=f1024 --batches=0 --intervention_configs=f1024 \
  --intervention_batches=4 --intervention_steps=2

{
  echo
  echo "## $(date -u +%Y-%m-%d) device check on ${backend} (bench/device_check.sh, $(( $(date +%s) - START )) s)"
  echo
  echo "Steps:"
  echo
  cat "$NOTES"
  # bench/run.py starts a new file with the BENCHMARKS intro: keep only its sections
  sed -n '/^## /,$p' "$SECTIONS" | sed 's/^## /### /'
} > "$WORK/check.md"
cat "$WORK/check.md" >> "$TARGET"
if [ -n "${OUT:-}" ]; then cp "$WORK/check.md" "$OUT/device_check.md"; fi
cat "$WORK/check.md"
