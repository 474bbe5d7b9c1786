"""`make notebooks`: regenerate notebooks/ (the student release) from solutions/ with nbgrader, and
zh/notebooks/ (the Chinese release) from the Chinese edition of solutions/ (autograder/editions.py).

nbgrader's generate_assignment runs in a scratch course in a temporary folder (the grader's own
autograder.course.build_course, so that the result is exactly what `make test` compares with), and
only when every assignment generated does notebooks/ change: each notebooks/<id>/ then holds exactly
what nbgrader released, and a folder whose assignment left solutions/ is removed. A failure leaves
every committed file as it was. Solution notebooks that carry outputs (run in JupyterLab) are cleared
first, since neither they nor the release may be committed with outputs.

    python -m tools.notebooks
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from autograder import course, editions
from autograder.course import build_course
from autograder.editions import Edition

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"
ZH_RELEASE = REPO / "zh" / "notebooks"


def clear_outputs(path: Path) -> bool:
    """Clear a notebook's outputs in place; True if it had any."""
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    if all(c.outputs == [] and c.execution_count is None for c in code):
        return False
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)
    return True


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def regenerate(solutions: str | os.PathLike[str] = SOLUTIONS, release: str | os.PathLike[str] = RELEASE,
               zh_release: str | os.PathLike[str] = ZH_RELEASE) -> list[str]:
    """Generate every assignment into a scratch course, in each edition; then make `release` and `zh_release`
    match them. Returns messages."""
    messages = []
    for path in sorted(Path(solutions).glob("*/*.ipynb")):
        if path.stem == path.parent.name and clear_outputs(path):
            messages.append(f"cleared the outputs of {path.relative_to(REPO)}")
    translated = [a for a in course.assignments() if editions.has_translation(a)]
    with tempfile.TemporaryDirectory(prefix="make-notebooks-") as scratch:
        english = build_course(Path(scratch) / "course") / course.RELEASE   # raises, touching nothing, on failure
        chinese = build_course(Path(scratch) / "course-zh", only=translated, edition=Edition.ZH) / course.RELEASE
        messages += _update(english, Path(release))
        messages += _update(chinese, Path(zh_release))
    return messages


def _update(generated: Path, release: Path) -> list[str]:
    """Make `release` hold exactly what nbgrader generated."""
    messages = []
    release.mkdir(parents=True, exist_ok=True)
    ids = sorted(p.name for p in generated.iterdir() if p.is_dir())
    for assignment in ids:
        new, old = generated / assignment, Path(release) / assignment
        for name in sorted(files_under(old) - files_under(new)):
            (old / name).unlink()
            messages.append(f"removed {(old / name).relative_to(REPO)} (nbgrader no longer releases it)")
        for name in sorted(files_under(new)):
            target = old / name
            if target.is_file() and target.read_bytes() == (new / name).read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".tmp")
            shutil.copyfile(new / name, temporary)
            temporary.replace(target)
            messages.append(f"wrote {target.relative_to(REPO)}")
    for stale in sorted(p for p in Path(release).iterdir() if p.is_dir() and p.name not in ids):
        shutil.rmtree(stale)
        messages.append(f"removed {stale.relative_to(REPO)}/ (no such assignment in solutions/)")
    return messages


def main() -> int:
    try:
        messages = regenerate()
    except Exception as error:
        print(f"make notebooks: nbgrader failed, notebooks/ is unchanged:\n{error}", file=sys.stderr)
        return 1
    for message in messages:
        print(f"make notebooks: {message}")
    print(f"make notebooks: notebooks/ and zh/notebooks/ are what nbgrader generates from solutions/"
          f"{'' if messages else ' (nothing changed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
