"""The grader and the tools are annotated: `mypy --strict` (pyproject.toml's [tool.mypy]) finds no error in
autograder/ or tools/. The same command as `make typecheck`, with its cache in the test's own folder, so that
the repository stays as it was."""
import subprocess
import sys

from tests.conftest import REPO


def test_autograder_and_tools_pass_mypy_strict(tmp_path):
    process = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
                              "--cache-dir", str(tmp_path / "mypy-cache")],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, f"mypy --strict failed (make typecheck):\n{process.stdout}{process.stderr}"
