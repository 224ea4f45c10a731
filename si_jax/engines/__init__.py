"""The engines behind bin/*.py: everything a binary does between parsing flags and exiting.

    settings      each editing binary's frozen settings, checked once (engine.run(settings, out)); tool_settings:
                  those of bin/train_judges, fit_lambda, generator_quality, convert_weights; flag_settings: how
                  flags become settings (from_flags), the flags several binaries share
    errors        one-line errors (run_guarded, run_app), out-of-memory advice, non-finite results as errors
    checks        flag and path checks before anything is created (require, check_output_dir, demo_mode, ...)
    hosts         JAX set-up (compilation cache, quiet XLA logs), --multihost, progress / compile / heartbeat lines
    weights       --weights and the numerics flags -> (canonical weights, G2Config with its Numerics)
    runs          resumable run folders (run.json + shards), their one shard loop (run_shards), device meshes,
                  multi-host shard split
    samples       sample folders of bin/sample.py (sample_run: bin/sample.py)
    labels        attribute label files for bin/fit_direction.py (fit_direction_run: the binary)
    generate_run  bin/generate.py
    edit_run      batch editing of many samples (bin/edit.py): shards, metrics, PNGs, summary
    edit_cli      bin/edit.py's run: model, latents, masks and run folder (--codes: project_edit)
    inputs        what every edit engine shares: the one model resolver (load_generator, resolve_model), mask
                  setting and source, --condition_on directions, --lambda_model, input digests (edit_cli,
                  project_edit, evaluate_cli, fit_lambda_run)
    demo          the embedded default: the toyfaces generator, its cached judge-labelled directions, the banner
    evaluate_cli  bin/evaluate.py: Table 2 by evaluator (evaluate_outputs: its figures, page, files; JSONL)
    project_cli, project_run, project_edit   bin/project.py, its resumable folder, editing its codes (--codes)
    fit_lambda_run, train_run   bin/fit_lambda.py, bin/train.py (train_programs: its step programs, compiled ahead)
    judges_run, quality_run, convert_run   bin/train_judges.py, bin/generator_quality.py, bin/convert_weights.py
The research experiments (paper suite, learned-Λ bench) are si_jax.experiments, above the engines.

May import every stage below (stylegan2, editing, evaluation, attributes); only bin/, bench/ and tests import it.
Its modules are imported by name (no re-exports): they are the binaries' back ends, not the library API.
"""
