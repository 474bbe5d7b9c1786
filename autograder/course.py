"""A scratch nbgrader course built from solutions/, so that grading never writes to the repository.

    scratch/source/<id>/<id>.ipynb     copies of solutions/ (solutions and hidden tests)
    scratch/release/<id>/<id>.ipynb    what nbgrader generate_assignment releases
    scratch/gradebook.db               the gradebook that generate_assignment fills
    scratch/edition                    the edition of the course: en, or zh (its notebooks in Chinese,
                                       autograder/editions.py); a Chinese submission is graded by a zh course
    scratch/source/<id>/<id>.english.json   in a zh course: the English source notebook (ENGLISH_SOURCE)

The grader copies a course it built before from _build/courses/ (`cached_course`, by a digest of what it is
built from) rather than building it again.

A job's folder is a course of the same layout (its source linked to the scratch course's, a copy of the
gradebook) with one submission in submitted/<student>/<id>/ and nbgrader's autograded/<student>/<id>/. The
functions below are the one place where these paths are spelt (nbgrader's CourseDirectory.format_path is the
model); every module asks them.

The configuration is the repository's nbgrader_config.py with the paths pointed at `scratch`. Its
assignments' structure is read here too: the graded cells and their points, and which solution cell each
graded cell tests (`components`).
"""
from __future__ import annotations

import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder.editions import Edition

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
SECRET_VARIABLE = "AUTOGRADER_SECRET"
SECRET_FILE = REPO / "autograder-secret.txt"   # git ignores it


def secret() -> str:
    """The course's secret: every seed of the tests run in the grader's process is mixed with it
    (autograder/verdicts.py), so that the inputs of the hidden tests cannot be known from the repository,
    and stay the same at every regrade. From $AUTOGRADER_SECRET when set, else from SECRET_FILE, which the
    first grading makes (readable by its owner only). It never enters a student's kernel."""
    if os.environ.get(SECRET_VARIABLE):
        return os.environ[SECRET_VARIABLE]
    try:
        fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SECRET_FILE.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        made = secrets.token_hex(32)
        out.write(made + "\n")
    return made


def assignments() -> list[str]:
    """Assignment ids: the folders of solutions/ that hold <id>/<id>.ipynb."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())


SOURCE, RELEASE, SUBMITTED, AUTOGRADED, GRADEBOOK = "source", "release", "submitted", "autograded", "gradebook.db"


def source_folder(root: str | os.PathLike[str], assignment: str) -> Path:
    """The assignment's source folder (its notebook, mistakes.py, diagnostics) in the course at `root`."""
    return Path(root) / SOURCE / assignment


def source_notebook(root: str | os.PathLike[str], assignment: str) -> Path:
    """The source notebook: solutions and hidden tests."""
    return source_folder(root, assignment) / f"{assignment}.ipynb"


def release_notebook(root: str | os.PathLike[str], assignment: str) -> Path:
    """The notebook nbgrader released to students."""
    return Path(root) / RELEASE / assignment / f"{assignment}.ipynb"


def submitted_folder(root: str | os.PathLike[str], student: str, assignment: str) -> Path:
    return Path(root) / SUBMITTED / student / assignment


def autograded_notebook(root: str | os.PathLike[str], student: str, assignment: str) -> Path:
    return Path(root) / AUTOGRADED / student / assignment / f"{assignment}.ipynb"


def gradebook_path(root: str | os.PathLike[str]) -> Path:
    return Path(root) / GRADEBOOK


def gradebook_url(root: str | os.PathLike[str]) -> str:
    return f"sqlite:///{gradebook_path(root)}"


def nbgrader_config(root: str | os.PathLike[str], extra: Config | None = None) -> Config:
    """The repository's nbgrader configuration, with the course root moved to `root` (and `extra` merged)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    overrides = Config()
    overrides.CourseDirectory.root = str(root)
    overrides.CourseDirectory.source_directory = SOURCE
    overrides.CourseDirectory.release_directory = RELEASE
    overrides.CourseDirectory.submitted_directory = SUBMITTED
    overrides.CourseDirectory.autograded_directory = AUTOGRADED
    overrides.CourseDirectory.db_url = gradebook_url(root)
    overrides.NbGraderAPI.log_level = "WARN"
    config.merge(overrides)
    if extra is not None:
        config.merge(extra)
    return config


def nbgrader_api(root: str | os.PathLike[str], extra: Config | None = None) -> Any:
    # nbgrader may run the `alembic` command on a gradebook: it must be on PATH.
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    import nbgrader.api
    nbgrader.api.get_alembic_version = alembic_head
    from nbgrader.apps import NbGraderAPI
    return NbGraderAPI(config=nbgrader_config(root, extra))


def alembic_head() -> str | None:
    """The gradebook's schema version, read in this process. nbgrader 0.9 starts the `alembic heads`
    command for it (a new Python: 2.5 s) each time it creates a gradebook; a test checks that both agree."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR
    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


EDITION = "edition"
# In a Chinese course, the English source notebook beside the translated one (a name nbgrader does not take for a
# notebook): the mistakes' edits quote its comments (mistakes.solution_notebook).
ENGLISH_SOURCE = "{id}.english.json"


def build_course(scratch: str | os.PathLike[str], only: Collection[str] | None = None,
                 edition: Edition = Edition.EN) -> Path:
    """Copy solutions/ into `scratch` and generate every assignment (or those in `only`); in the Chinese
    edition, each source notebook is its translation (autograder/editions.py)."""
    import nbformat
    from autograder import editions
    scratch = Path(scratch)
    ids = [a for a in assignments() if only is None or a in only]
    for assignment in ids:
        shutil.copytree(SOLUTIONS / assignment, source_folder(scratch, assignment),
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        if edition is Edition.ZH:   # the English one stays beside it, for the mistakes' edits (mistakes.solution_notebook)
            english = nbformat.read(source_notebook(scratch, assignment), as_version=4)
            shutil.copy(source_notebook(scratch, assignment),
                        source_folder(scratch, assignment) / ENGLISH_SOURCE.format(id=assignment))
            nbformat.write(editions.translated_notebook(english, assignment), source_notebook(scratch, assignment))
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / EDITION).write_text(edition.value, encoding="utf-8")
    api = nbgrader_api(scratch)
    for assignment in ids:
        result = api.generate_assignment(assignment)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n"
                               f"{result.get('error') or result.get('log')}")
    return scratch


COURSES = REPO / "_build" / "courses"   # courses built before (cached_course), one folder per key
KEEP_COURSES = 12                        # the most recently used ones are kept


def cached_course(scratch: str | os.PathLike[str], only: Collection[str], edition: Edition, key: str) -> Path:
    """build_course(scratch, only, edition), copied from COURSES/<edition>-<key> when a course of that key was
    built before (nbgrader's generate_assignment takes about a second per assignment; a copy, milliseconds).
    `key` is a digest of all that the build reads (pipeline: the grader's code and configuration, the
    assignments' folders and translations), so that a change of any of them builds anew. A new course is built
    in `scratch` itself, then stored: copied into a folder of its own and renamed into place, so that a grader
    running beside this one finds it whole or not at all. (It is not built elsewhere and renamed: nbgrader works
    in the course's folder while it builds, and a worker process started meanwhile (pipeline.PrestartedPool)
    takes that folder for its own working folder: it must still be there when the worker starts.) Where COURSES
    cannot be written (a read-only repository), nothing is stored."""
    stored = COURSES / f"{edition.value}-{key}"
    if stored.is_dir():
        try:
            os.utime(stored)   # recently used: kept (before the copy, so that no other grader forgets it meanwhile)
        except OSError:
            pass
        shutil.copytree(stored, scratch)
        return Path(scratch)
    build_course(scratch, only, edition)
    try:
        COURSES.mkdir(parents=True, exist_ok=True)
        storing = Path(tempfile.mkdtemp(prefix=".storing-", dir=COURSES))
    except OSError:
        return Path(scratch)
    try:
        shutil.copytree(scratch, storing / "course")
        os.rename(storing / "course", stored)
    except OSError:   # another grader stored the same course first, or the disk is full: nothing is lost
        pass
    finally:
        shutil.rmtree(storing, ignore_errors=True)
    _forget_old_courses()
    return Path(scratch)


def _forget_old_courses() -> None:
    kept = sorted((p for p in COURSES.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP_COURSES:]:
        shutil.rmtree(old, ignore_errors=True)


def edition(root: str | os.PathLike[str]) -> Edition:
    """The edition of the course at `root` (a scratch course, or a job's folder beside one): the language of
    its feedback."""
    path = Path(root) / EDITION
    return Edition(path.read_text(encoding="utf-8").strip()) if path.is_file() else Edition.EN


def without_magics(source: str) -> str:
    """A cell's source without its IPython lines (`%magic`, `!shell`): the Python that runs in the grader's process."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def components(notebook: NotebookNode) -> dict[str, str]:
    """{grade_id of a graded cell: grade_id of the solution cell it tests}: a solution cell's tests are the
    graded cells that follow it, up to the next solution cell. A solution cell that no graded cell follows
    (a helper pasted from another assignment) is graded elsewhere."""
    owner: dict[str, str] = {}
    current: str | None = None
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            current = meta.get("grade_id")
        elif meta.get("grade") and current is not None:
            owner[meta.get("grade_id")] = current
    return owner


def assignment_components(root: str | os.PathLike[str], assignment: str) -> dict[str, str]:
    """`components` of the assignment's source notebook in the course at `root` (read once per process:
    a scratch course does not change once built)."""
    return dict(_components_of(str(root), assignment))


@functools.lru_cache(maxsize=32)
def _components_of(root: str, assignment: str) -> dict[str, str]:
    return components(read_source(root, assignment))


@functools.lru_cache(maxsize=16)
def read_source(root: str, assignment: str) -> NotebookNode:
    """The assignment's source notebook in the course at `root`, read once per process and course (a scratch
    course does not change once built): shared, never to be changed by its reader."""
    import nbformat
    notebook: NotebookNode = nbformat.read(source_notebook(root, assignment), as_version=4)
    return notebook


def graded_cells(scratch: str | os.PathLike[str], assignment: str) -> list[tuple[str, float]]:
    """[(grade_id, max_score)] of an assignment's graded cells, in notebook order: the source notebook's nbgrader
    metadata, from which generate_assignment filled the gradebook (tests/test_operations.py checks that they agree).
    Read from the notebook, so that the grader's main process never imports nbgrader (0.6 s of every run)."""
    return [(meta["grade_id"], float(meta.get("points", 0))) for meta in
            (cell.metadata.get("nbgrader", {}) for cell in read_source(str(scratch), assignment).cells)
            if meta.get("grade")]
