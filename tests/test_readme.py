"""The README tells the truth about the checkout: its ```python blocks run as they are, and the files it links to
exist."""
import re
import subprocess
import sys

from conftest import REPO, xla_env

README = (REPO / "README.md").read_text()


def python_blocks(text: str) -> list:
    """The bodies of the ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)


def test_python_blocks_run_as_is(tmp_path):
    """Every block, in order, in ONE fresh interpreter (each with its own namespace) in an empty folder: files a
    block writes do not land in the checkout. Full XLA optimisation, like the other toyfaces subprocesses."""
    blocks = python_blocks(README)
    assert blocks, "README.md has no ```python block"
    code = "import sys\nfor i, block in enumerate(sys.argv[1:]):\n    exec(compile(block, f'README block {i}', 'exec'), {})\n"
    proc = subprocess.run([sys.executable, "-c", code, *blocks], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=dict(xla_env(full_opt=True), JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_linked_files_exist():
    """Every markdown link or image of the README that points into the checkout names a file it has (the design
    notes in ../shared are cited as outside the repo)."""
    targets = sorted(set(re.findall(r"\]\(([^)#:]+)\)", README)))
    assert "RESULTS.md" in targets and "docs/demo_grid.png" in targets
    assert [t for t in targets if not (REPO / t).exists()] == []
    assert "../shared/DESIGN.md" in README and "DESIGN.md)" not in README
