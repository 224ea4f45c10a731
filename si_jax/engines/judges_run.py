"""The engine of bin/train_judges.py: train the toyfaces judges (world.judge_training) into a folder.

    report = run(tool_settings.judges_job(FLAGS), FLAGS.output_dir)
"""
from __future__ import annotations

import json

from si_jax.engines import errors, hosts


def run(job, out, log=print, command: str = "") -> dict:
    """A JudgesJob (engines.tool_settings) and the folder for the two .safetensors files (it must exist) -> train
    the classifier, then the segmenter, write both, print the held-out report as JSON. -> the report. command:
    recorded in the files' metadata."""
    from si_jax.world import judge_training

    if not out:
        raise errors.UsageError("--output_dir is required")
    log(f"training the classifier, then the segmenter; each compiles its step first ({hosts.compile_note()})")
    with hosts.heartbeat("training the judges", log=log):
        report = judge_training.train_judges(
            out, classifier_steps=job.classifier_steps, segmenter_steps=job.segmenter_steps, batch=job.batch_size,
            seed=job.seed, eval_seed=job.eval_seed, eval_num=job.eval_num, command=command, log=log,
            overwrite=job.overwrite)
    log(json.dumps(report, indent=1))
    return report
