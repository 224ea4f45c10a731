"""The engines behind bin/*.py: everything a binary does between parsing flags and exiting.

    settings      flags -> each binary's frozen settings, checked once (engine.run(settings, out))
    cli           one-line errors, output checks, progress lines
    runs          resumable run folders (run.json + shards), their one shard loop (run_shards), device meshes,
                  multi-host shard split
    samples       sample folders of bin/sample.py and the per-sample latent rule (sample_run: bin/sample.py)
    labels        attribute label files for bin/fit_direction.py (fit_direction_run: the binary)
    generate_run  bin/generate.py
    edit_run      batch editing of many samples (bin/edit.py): shards, metrics, PNGs, summary
    edit_cli      bin/edit.py's run: model, latents, masks and run folder (--codes: project_edit)
    inputs        what every edit engine shares: mask setting and source, model (generator, directions, judge),
                  --condition_on directions, input digests (edit_cli, project_edit, evaluate_cli)
    evaluate_cli  bin/evaluate.py: Table 2 and the figures on disk
    demo, synthetic   the embedded default: built-in generator, synthetic attribute, fitted directions

May import every stage below (stylegan2, editing, evaluation); only bin/ and tests import it. Its modules are
imported by name (no re-exports): they are the binaries' back ends, not the library API.
"""
