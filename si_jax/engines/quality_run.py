"""The engine of bin/generator_quality.py: how good a toyfaces generator is, measured by the shipped judges
(si_jax.training.quality).

    report = run(tool_settings.quality_job(FLAGS), FLAGS.output)    # out: also write the report there (JSON)
"""
from __future__ import annotations

import json
import sys

import numpy as np

from si_jax.engines import checks, errors, hosts, runs, weights


def run(job, out=None, log=None) -> dict:
    """A QualityJob (engines.tool_settings) and an optional JSON path `out` (written atomically; an existing file
    is replaced) -> the quality report, printed as one JSON line. Progress goes to stderr (log: None)."""
    import si_jax
    from si_jax.stylegan2 import conv_library
    from si_jax.training import quality
    from si_jax.world import judges

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if out:
        checks.check_output_free(out, overwrite=True, inputs=[job.weights])
    canonical, cfg = weights.load_weights(job.weights)
    hint = errors.likely_cause(truncation_psi=job.truncation_psi)
    try:
        log(f"generating, rendering and judging {job.num} images each; the programs compile first "
            f"({hosts.compile_note()})")
        with hosts.heartbeat(f"generating, rendering and judging {job.num} images each"):
            judged_by = judges.load_judges().with_options_for(conv_library.batch_options)   # XLA:CPU's conv library
            report = quality.quality_report(si_jax.to_jax_params(canonical, cfg), cfg, judged_by, num=job.num,
                                            truncation_psi=job.truncation_psi)
    except np.linalg.LinAlgError as e:   # the Fréchet distance of non-finite features
        raise errors.NonFiniteError(f"quality report: the Fréchet distance failed ({e}); likely cause: {hint}") \
            from None
    report.update(weights=job.weights, fingerprint=si_jax.fingerprint(canonical))
    errors.finite_numbers_or_error(report, "quality report", hint)
    if out:
        runs.write_json_atomic(out, report)
    print(json.dumps(report))
    return report
