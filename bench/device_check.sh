#!/usr/bin/env bash
# On a machine with an accelerator (GPU / TPU): measure in under 8 minutes what only such a machine can tell, and
# append it to BENCHMARKS.md (and, when $OUT is set, copy the new section to $OUT/device_check.md).
#
#     bash bench/device_check.sh            # DEVICE_CHECK_BUDGET_S=470 by default: the whole check, all steps
#
# Steps, most important first, each a `python bench/run.py` call (see its docstring; --precision as in the
# binaries, si_jax.stylegan2.numerics) under a timeout cut to the budget left; a step that does not finish is
# recorded as such instead of its table:
#   1. paper256, --precision=tf32 (TF32 tensor cores): synthesis at batch 1, 8, 32; the edit loop at batch 1
#      and 16 (3 steps/layer, scaled): throughput, compile time, share of the matmul and bandwidth ceilings
#   2. paper256, --precision=bf16 (bfloat16 from 32 px): synthesis at batch 1, 8, 32; the edit loop at batch 16
#   3. f1024, tf32: synthesis at batch 1 and 4, and the largest fwd+bwd batch (doubling up to 64)
#   4. paper256, --precision=fp32 (FP32 cores): synthesis at batch 1, 8; the edit loop at batch 16
#   5. bf16 / tf32 effect on results: bench/precision.py (toyfaces eyeglasses edit, fp32 vs tf32 vs bf16)
#   6. f1024, tf32: the edit loop at batch 4 (2 steps/layer, scaled)
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

step() {   # step NAME SECONDS [SCRIPT] ARGS...: one bench/run.py (or SCRIPT) call, its section appended to $SECTIONS
  local name=$1 want=$2 left t rc script=bench/run.py
  shift 2
  case "${1:-}" in bench/*.py) script=$1; shift ;; esac
  left=$((BUDGET - ($(date +%s) - START)))
  t=$(( want < left ? want : left ))
  if (( t < 30 )); then
    echo "- $name: not run (device-check budget of ${BUDGET} s spent)" >> "$NOTES"
    return
  fi
  echo "== $name (timeout ${t} s)" >&2
  local t0=$(date +%s)
  timeout -k 10 "$t" "$PY" "$script" --benchmarks_file="$SECTIONS" "$@" > "$WORK/$name.log" 2>&1
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

step paper256_tf32 120 --precision=tf32 --configs=paper256 --batches=1,8,32 \
  --intervention_configs=paper256 --intervention_batches=1,16 --intervention_steps=3
step paper256_bf16 80 --precision=bf16 --configs=paper256 --batches=1,8,32 \
  --intervention_configs=paper256 --intervention_batches=16 --intervention_steps=3
step f1024_tf32 90 --precision=tf32 --configs=f1024 --batches=1,4 --intervention_configs= \
  --max_batch_configs=f1024 --max_batch_limit=64
step paper256_fp32 60 --precision=fp32 --configs=paper256 --batches=1,8 \
  --intervention_configs=paper256 --intervention_batches=16 --intervention_steps=3
step precision_effect 60 bench/precision.py --num_images=32
step f1024_edit_loop 60 --precision=tf32 --configs=f1024 --batches=0 --intervention_configs=f1024 \
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
