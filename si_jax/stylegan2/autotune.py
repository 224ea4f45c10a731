"""Conv algorithm choices measured on the host that runs them ('auto' on CPU, float32), cached on disk.

    t = ops.tuning(x, kernel, s, up=False)   # the layer with each form: {"direct": f, "winograd2d": g, "rows": h}
    algo = autotune.choose(t.kind, t.forms, t.args, "highest", t.rule, names=t.names)

The first time a (kind, shapes, dtype, precision, what is differentiated) is needed on a host, each candidate (the
layer the conv runs in, computed with one form: si_jax.stylegan2.conv_tuning builds them from the layer's own code,
so the conv is timed fused with its modulation, demodulation, bias and activation as the network runs it) is
jit-compiled for the shapes at hand and timed eagerly on zero arrays (si_jax.stylegan2.conv_timing: all compiles
done before any timing, two warm-up calls, then the minimum over interleaved rounds in alternating order, 3 at least
and up to 15 while the two fastest are within 15 % of each other; short calls timed back to back; fwd, or fwd+bwd
when the caller is being differentiated), and the fastest is kept (the fixed rule's choice unless another is `MARGIN`
faster), like cuDNN's benchmark mode. The choice is written to a JSON file (`cache_path()`: $SI_JAX_CONV_CHOICES,
else ~/.cache/si_jax/conv_choices.json), atomically through si_jax.storage, under the host's key (`host_key()`:
backend, CPU model and SIMD flags, CPU count, jax version): a warm cache times nothing, and the choice is
deterministic given the file. A conv traced for a program compiled with other XLA options (Numerics.conv_library
'eigen') is timed compiled so, under its own entry (key + ' eigen'): the fastest form depends on the library. A
file that cannot be read or does not have this module's format and version is rebuilt (with a warning on stderr),
never trusted.

`choose` runs at trace time, inside jit / grad / vmap: the timing is a separate computation, run on concrete
arrays under `jax.ensure_compile_time_eval()`, so it is executed, not staged into the caller's program.
Under vmap the per-example shape is timed (the shape the caller sees).

What is differentiated: 'fwd' (no tracer of an autodiff transform in the arguments), else 'grad_' and the letters
of those that carry one (x input, w kernel, s styles: 'grad_xs' in the edit loop, 'grad_xws' in training); the
grad modes time forward + VJP w.r.t. those arguments. Best effort: a function traced to a jaxpr first and
differentiated afterwards (the body of a lax.scan / jax.checkpoint under grad) sees no autodiff tracer and is timed
as 'fwd'.

Budget: one process measures for about `budget()` seconds (BUDGET_S = 5 s; $SI_JAX_CONV_TUNING_BUDGET), then keeps
the rule for entries still missing, unrecorded, so that no start pays more than a few seconds and the file fills
over several starts (a paper256 edit session has 16 entries, 28-57 s in all on the 2-core AMD EPYC (avx512f),
loaded, 2026-12-05).

Convs of under MIN_FLOPS per image (1e8 FLOPs: under ~1 ms on 2 CPU cores), whatever the batch, keep the fixed rule
unmeasured: there a choice saves tens of microseconds per call (the rule was 12-35 % off at some toyfaces layers,
e.g. 16 px conv1 fwd: direct 0.27 vs winograd2d 0.20 ms), while measuring them cost the demo (bin/edit.py on the
32 px toyfaces model, every conv of which is under 1e8) 10.9 s of its 28 s cold start and 8.1 s of its 13 s second
start, for a whole network that ran no faster with the measured choices (0.97x fwd, 1.01x fwd+bwd; idle 2-core AMD
EPYC (avx512f), BENCHMARKS.md 2026-12-05 night). Inside `long_running()` (the training step) the threshold counts
the whole call, every image of the batch, and the budget does not apply (`long_running`).
Every paper256 conv from 8 px up and every config-f 1024 conv is measured.

Measuring is on by default; $SI_JAX_CONV_TUNING=off keeps the fixed rule (no measuring, no file: `choose`
returns `rule`, si_jax.stylegan2.numerics). A run of several processes (jax.process_count() > 1) keeps the rule
too: its processes must compile the same programs, and their measurements could differ. The test suite runs with
measuring off (tests/conftest.py) unless a test turns it on.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import pathlib
import platform
import sys
import threading
import time

import jax
import numpy as np

from si_jax import storage
from si_jax.stylegan2 import conv_timing
from si_jax.stylegan2.conv_timing import time_candidates

CACHE_ENV = "SI_JAX_CONV_CHOICES"
TUNING_ENV = "SI_JAX_CONV_TUNING"
BUDGET_ENV = "SI_JAX_CONV_TUNING_BUDGET"
BUDGET_S = 5.0   # seconds of measuring per process by default: what a cold start may pay (`budget`)
FORMAT, VERSION = "si_jax.conv_choices", 2   # 2: layers timed in context (1: the conv alone)
MARGIN = 0.05   # another candidate must be 5 % faster than the fixed rule's to replace it
MIN_FLOPS = 1e8   # convs below this per image (under ~1 ms on 2 CPU cores) keep the fixed rule (docstring)
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
               "asimd", "sve")
_AD_TRACERS = ("JVPTracer", "LinearizeTracer")
_memo: dict = {}   # cache path -> {host key: {entry key: record}} as last read or written by this process
_lock = threading.RLock()   # programs are traced in parallel threads (editing.intervention): one measures at a time
_spent = [0.0]   # seconds this process has spent measuring
_announced = [False]   # whether this process has said on stderr that it measures (`announce`)
_remeasured: set = set()   # entry keys this process measured again (`settled_record`): once per process
_long_running = contextvars.ContextVar("si_jax_conv_long_running", default=False)   # `long_running`
CONTENDED, TRIES = 0.25, 3   # a choice measured while others used over this share of the CPUs is measured again


def enabled() -> bool:
    """Whether 'auto' conv forms are measured: $SI_JAX_CONV_TUNING, 'on' by default ('on' / '1' / 'true' / 'yes'
    measures; 'off' / '0' / 'false' / 'no' keeps the fixed rule; anything else is a ValueError naming the variable).
    Off by default for a day (2026-12-05) after three 2-core A/Bs of the config-f 1024 forward ran 0.89-0.97x with
    the measured choices; the cause was the bench's fixed order (the measured program always first, the rule's last):
    the same programs interleaved in alternating order ran alike (0.817 vs 0.808 s), and with the order alternating
    bench/vs_reference.py measured 1.03-1.08x for the measured choices at paper256 and config-f 1024 (idle 2-core AMD
    EPYC (avx512f), BENCHMARKS.md 2026-12-06)."""
    value = os.environ.get(TUNING_ENV, "on").strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"${TUNING_ENV}={value!r} must be 'on' or 'off'")


def check_environment() -> None:
    """Raise ValueError naming a malformed $SI_JAX_CONV_TUNING or $SI_JAX_CONV_TUNING_BUDGET (what `enabled` and
    `budget` read at trace time), so that a binary refuses it before it creates anything (engines.errors)."""
    enabled()
    budget()


def applies(dtype, backend: str | None = None) -> bool:
    """Whether 'auto' conv forms are measured for arrays of `dtype` on `backend` (jax.default_backend() when None):
    measuring is on (`enabled`), they are float32 on CPU, and this is a run of one process (module docstring)."""
    return (backend or jax.default_backend()) == "cpu" and np.dtype(dtype) == np.float32 and enabled() and \
        jax.process_count() == 1


def budget() -> float:
    """Seconds of measuring one process may spend: $SI_JAX_CONV_TUNING_BUDGET ('inf': no limit), default BUDGET_S.
    Once spent, entries the cache lacks keep the fixed rule, unrecorded, and a later process measures them: a cold
    start pays about the budget (plus the entry under way: 0.7-22 s on the idle 2-core AMD EPYC, 2026-12-06, the
    longest config-f 1024's 512 px up-conv fwd+bwd) and the file fills over a few starts."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    try:
        return float(value) if value else BUDGET_S
    except ValueError:
        raise ValueError(f"${BUDGET_ENV}={value!r} is not a number of seconds (or 'inf')") from None


def cache_path() -> pathlib.Path:
    """$SI_JAX_CONV_CHOICES, else ~/.cache/si_jax/conv_choices.json ($XDG_CACHE_HOME honoured)."""
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "si_jax" / "conv_choices.json"


def _cpu_model_and_flags() -> tuple:
    """(CPU model name, the SIMD flags of `_SIMD_FLAGS` it has) from /proc/cpuinfo; platform's names elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model") and model in (platform.processor(), platform.machine()):
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags = set(value.split())
    except OSError:
        pass
    return model, tuple(f for f in _SIMD_FLAGS if f in flags)


def host_key() -> str:
    """What a measurement is valid for: backend, device kind (CPU model and SIMD flags on CPU), CPUs, jax version."""
    backend = jax.default_backend()
    if backend == "cpu":
        model, flags = _cpu_model_and_flags()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        device = f"{model} [{' '.join(flags)}] x{cpus}"
    else:
        device = jax.devices()[0].device_kind
    return f"{backend} | {device} | jax {jax.__version__}"


def differentiated(*arrays) -> tuple:
    """For each array: whether it carries a tracer of an autodiff transform (jvp / linearize: grad, vjp), looking
    through vmap and jit tracers."""
    out = []
    for a in arrays:
        found = False
        while isinstance(a, jax.core.Tracer) and not found:
            found = type(a).__name__ in _AD_TRACERS
            a = getattr(a, "primal", None) if hasattr(a, "primal") else getattr(a, "val", None)
        out.append(found)
    return tuple(out)


def mode_of(args, names: str = "xw") -> str:
    """'fwd', or 'grad_' + the names (one letter per argument: x input, w kernel, s styles...) of the arguments
    being differentiated, e.g. 'grad_xs'. A name of '-' marks an argument never differentiated in a timing."""
    letters = "".join(n for n, d in zip(names, differentiated(*args)) if d and n != "-")
    return "grad_" + letters if letters else "fwd"


def entry_key(kind: str, args, precision, mode: str) -> str:
    """'modconv_3x3 fwd 1x32x32x64 3x3x64x64 1x64 64 float32 highest': one measurement's key within a host (the
    shapes of every array argument, the first one's dtype; other arguments, such as kernel forms derived from
    the kernel, are named by the kind)."""
    shapes = " ".join("x".join(str(d) for d in a.shape) or "scalar" for a in args if hasattr(a, "shape"))
    return f"{kind} {mode} {shapes} {np.dtype(args[0].dtype).name} {precision}"


def _load(path: pathlib.Path) -> dict:
    """{host key: {entry key: record}} from the cache file; {} when it is absent; a damaged file or one of another
    format is reported on stderr and ignored (it is rewritten at the next measurement)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("version") == VERSION
                and isinstance(data.get("hosts"), dict)):
            raise ValueError(f"not a {FORMAT} version {VERSION} file")
        hosts = data["hosts"]
        for entries in hosts.values():
            if not isinstance(entries, dict) or not all(
                    isinstance(r, dict) and isinstance(r.get("choice"), str) for r in entries.values()):
                raise ValueError("malformed entries")
        return hosts
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"warning: conv choices cache {path} is damaged ({e}); ignoring it and measuring again "
              f"(it will be rewritten)", file=sys.stderr, flush=True)
        return {}


def _hosts(path: pathlib.Path) -> dict:
    if path not in _memo:   # read outside the lock too (`choose`): never replace what another thread put there
        _memo.setdefault(path, _load(path))
    return _memo[path]


def _record(path: pathlib.Path, host: str, key: str, record: dict) -> None:
    """Add one record and write the file (re-read first, so entries other processes wrote are kept)."""
    hosts = _load(path) if path.exists() else {}
    hosts.setdefault(host, {}).update(_memo.get(path, {}).get(host, {}))
    hosts[host][key] = record
    _memo[path] = hosts
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.write_atomic(path, storage.json_bytes({"format": FORMAT, "version": VERSION, "hosts": hosts}))
    except OSError as e:
        print(f"warning: could not write the conv choices cache {path} ({e}); the choice holds for this process",
              file=sys.stderr, flush=True)


def pick(times: dict, rule: str) -> str:
    """The fastest of {name: seconds}; `rule` (the fixed rule's choice) unless another is over MARGIN faster, so that
    near-ties, where the order is noise, keep the rule."""
    fastest = min(times, key=times.get)
    if rule in times and times[rule] <= (1 + MARGIN) * times[fastest]:
        return rule
    return fastest


def conv_flops(x_shape, k_shape) -> float:
    """Multiply-adds x 2 of a stride-1 conv of x [N, H, W, I] with kernel [kh, kw, I, O] (per output position)."""
    n, h, w, _ = x_shape
    kh, kw, i, o = k_shape
    return 2.0 * n * h * w * kh * kw * i * o


def worth_measuring(x_shape, k_shape) -> bool:
    """Whether a conv of x [N, H, W, I] with kernel [kh, kw, I, O] does MIN_FLOPS per image, or per call inside
    `long_running()` (else the rule stands)."""
    return conv_flops(x_shape, k_shape) / (1 if _long_running.get() else x_shape[0]) >= MIN_FLOPS


@contextlib.contextmanager
def long_running():
    """Within (at trace time, in this thread), convs are measured as for a program run for hours: MIN_FLOPS counts a
    conv's whole call, every image of its batch (a choice saves its per-image gain times the batch on every call),
    and the budget does not cut the measuring short, so that every choice is made at the first start and kept (one
    measured under load is not measured again here): a resumed run on this host compiles the same program (and
    hits the persistent compilation cache) and computes the same values. The training step runs inside: its
    shipping config's convs (32 px x 64 channels, batch 32) are under MIN_FLOPS per image and over it per call;
    measured, its plain step ran 1.047x faster than with the fixed rule on one XLA device and 1.01x on two host
    devices (bin/train.py's default), for 30-34 s of measuring (19 entries) at the first start (idle 2-core AMD EPYC
    (avx512f), 2026-12-06, BENCHMARKS.md). The convs are timed at the traced (whole-batch) shape on all cores, also
    when the batch is split over host devices."""
    token = _long_running.set(True)
    try:
        yield
    finally:
        _long_running.reset(token)


def exclusive():
    """A context (re-entrant) during which no other thread of this process measures a conv; one measurement under way
    is finished first. bin/train.py runs each training step inside: the step's other variants are traced (and their
    convs measured) on a background thread while the first steps run (si_jax.engines.train_programs), and a
    measurement beside a running step would time the candidates on shared cores (conv_timing.Others sees other
    processes only), then be kept for the whole run (`long_running`). Looking up a recorded choice does not wait
    (`choose` takes the lock only to measure), so a resume's background traces run beside the steps."""
    return _lock


def choose(kind: str, candidates: dict, args, precision, rule: str, *, names: str = "xw",
           same_backward: bool = False, mode: str | None = None, library: tuple = ("", None)) -> str:
    """The fastest of `candidates` ({name: f(*args)}: the same layer computed with each conv form) for these
    arguments on this host: from the cache file, else measured now and recorded. `rule` when measuring is off
    ($SI_JAX_CONV_TUNING=off), there is one candidate, the conv is too small to be worth measuring (under
    MIN_FLOPS: seconds of measuring to save microseconds), or this process has spent its `budget`.
    args: arrays or tracers, the conv's input x [N, H, W, I] and kernel [kh, kw, I, O] first (only shapes, dtypes and
    autodiff tracers are used); names: one letter per argument for the mode ('-': never differentiated in the
    timing). same_backward: every candidate has the same gradient computation (the Winograd convs' is the direct
    conv's), so only the forward is timed, whatever is differentiated. mode: 'fwd' / 'grad_x' / ... instead of what
    the tracers say (benches). library: (name, XLA compiler options) of the program the conv is traced in
    (Numerics.conv_library; ('', None): XLA's default): the forms are timed compiled with those options, under a
    key naming the library, since which form is fastest depends on it (paper256's 256 px x 64 conv at batch 1 on the
    idle 2-core AMD EPYC (avx512f): direct faster in YNNPACK, rows in Eigen; BENCHMARKS.md 2026-12-06 session 16)."""
    if not enabled() or len(candidates) < 2 or not worth_measuring(args[0].shape, args[1].shape):
        return rule
    mode = "fwd" if same_backward else mode or mode_of(args, names)
    name, options = library
    key = entry_key(kind, args, precision, mode) + (f" {name}" if name else "")
    return measured(key, candidates, args, rule, mode=mode, names=names,
                    options=dict.fromkeys(candidates, options) if options else None)


def measured(key: str, candidates: dict, args, rule: str, *, mode: str = "fwd", names: str = "xw",
             options: dict | None = None, max_repeats: int = conv_timing.MAX_REPEATS, in_thread: bool = False) -> str:
    """The fastest of `candidates` on `args` under entry `key` of this host: recorded, else measured now (within
    the budget; `rule` when it is spent) and recorded. What `choose` does once it has decided to measure; also the
    whole-program choice of si_jax.stylegan2.conv_library (options: {name: XLA compiler options}; max_repeats,
    in_thread: conv_timing.time_candidates')."""
    path, host = cache_path(), host_key()
    record, known, final = _lookup(path, host, key, candidates)
    if final:   # no lock: a thread tracing beside a holder of `exclusive` waits only to measure
        return record["choice"]
    with _lock:
        record, known, final = _lookup(path, host, key, candidates)   # again: another thread may have measured it
        if final:
            return record["choice"]
        if _spent[0] >= budget() and not _long_running.get():
            return record["choice"] if known else rule
        announce(path)
        t0 = time.perf_counter()
        with conv_timing.Others() as others:
            times = time_candidates(candidates, args, mode, names, max_repeats=max_repeats, options=options,
                                    in_thread=in_thread)
        _spent[0] += time.perf_counter() - t0
        new = {"choice": pick(times, rule), "ms": {n: round(1e3 * t, 4) for n, t in times.items()},
               "measured_s": round(time.perf_counter() - t0, 3), "others": round(others.share, 3), "tries": 1}
        if known:   # measured before while other processes were busy: keep the quieter of the two measurements
            _remeasured.add(key)
            tries = record.get("tries", 1) + 1
            new = dict(new if new["others"] < record.get("others", 0.0) else record, tries=tries)
        _record(path, host, key, new)
        return new["choice"]


def recorded(key: str, candidates) -> str | None:
    """The final recorded choice of entry `key` on this host (one of `candidates`), or None: not recorded, or to be
    measured again (`_lookup`). Lets a caller skip building what measuring would need."""
    record, _, final = _lookup(cache_path(), host_key(), key, candidates)
    return record["choice"] if final else None


def _lookup(path, host: str, key: str, candidates) -> tuple:
    """(record or None, known: its choice is one of `candidates` and it timed them all, final: known and not to be
    measured again: settled_record, measured again by this process already, or inside `long_running`). A record
    that timed fewer candidates than there are now (a form added since, as 'polyphase_w2' to the up-conv's) is
    measured again; one with no times (written by hand) is taken as it is."""
    record = _hosts(path).get(host, {}).get(key)
    known = record is not None and record["choice"] in candidates and set(record.get("ms") or candidates) >= set(
        candidates)
    return record, known, known and (settled_record(record) or key in _remeasured or _long_running.get())


def announce(path) -> None:
    """Say once per process, on stderr, that the pause to come is measuring (no start should go silent)."""
    if not _announced[0]:
        _announced[0] = True
        how = "for a long run: every layer shape now, ~2 s each" if _long_running.get() else \
            f"a budget of {budget():g} s of measuring per start"
        print(f"measuring conv algorithms on this CPU (once per layer shape, {how}; kept in {path}; "
              f"SI_JAX_CONV_TUNING=off skips it)", file=sys.stderr, flush=True)


def settled_record(record: dict) -> bool:
    """Whether a cached choice is final: measured while other processes used at most CONTENDED of the CPUs
    (conv_timing.Others), or measured TRIES times. One measured under more load is measured again by a later
    process (within its budget; once per process), and the quieter measurement kept: a burst of someone else's
    load turns over the order of candidates, and under heavy load memory-bound and compute-bound forms slow down
    unlike each other (paper256's 256 px conv1 fwd on the shared 2-core AMD EPYC: direct 25.5 vs rows 29.4 ms at
    load 1.5, rows 43-50 vs direct 60-96 ms at load 8; BENCHMARKS.md 2026-12-05). Records without these fields
    are final."""
    return record.get("others", 0.0) <= CONTENDED or record.get("tries", 1) >= TRIES
