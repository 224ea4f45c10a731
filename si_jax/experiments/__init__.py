"""Research experiments: the measurements behind RESULTS.md, run by bench/*.py (not the library API, not behind
any bin/*.py).

    paper_suite   the paper's claims on the toyfaces world, measured by its judges (bench/paper.py): Table 1,
                  Table 2 (7 rows, by evaluator: evaluation.evaluators), objective variants, Fig. 2, auto-mask IoU
    paper_report  RESULTS.md, docs/results/*.png, results/*.json from paper_suite's measurements
    lambda_bench  the learned Λ against per-image and shared Λ on Table 2's images (bench/lambda_model.py)

May import every stage, the engines included (it drives them as bench/ does); nothing of si_jax imports it.
"""
