"""Submitted trees that are not plain folders and files: symbolic and hard links (which unzip and tar
keep), a named pipe, hidden folders, and what archivers and editors leave behind (__MACOSX, AppleDouble
`._*` files, .ipynb_checkpoints, Jupyter's `.~*` temporary files). tests/test_hostile.py plants them in
its batch, beside the corpus of notebooks, and checks what the grader makes of each: every student folder
appears in grades.csv or errors.csv, a link is refused and never followed, litter is never a student or a
notebook.
"""
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.conftest import release_path, solution_path
from tests.hostile import ASSIGNMENT, FULL

# The exact attack of issue 21: the grader runs at the repository root, so this "notebook" is the solution.
TO_SOLUTIONS = f"/proc/self/cwd/solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "   # the magic of an AppleDouble file


@dataclass(frozen=True)
class Planted:
    plant: Callable[[Path, Path], None]   # (the student's folder under SUBMISSIONS, a folder outside it)
    score: float | None                   # its score in grades.csv; None: no row there
    error: str | None = None              # a text its row of errors.csv must hold; None: no row


def _notebook_folder(student: Path) -> Path:
    folder = student / ASSIGNMENT
    folder.mkdir(parents=True)
    return folder


def _symlinked_notebook(target):
    def plant(student, outside):
        (_notebook_folder(student) / f"{ASSIGNMENT}.ipynb").symlink_to(target)
    return plant


def _symlinked_assignment_folder(student, outside):
    real = outside / "an-assignment-folder"
    real.mkdir()
    shutil.copy(solution_path(ASSIGNMENT), real / f"{ASSIGNMENT}.ipynb")
    student.mkdir()
    (student / ASSIGNMENT).symlink_to(real, target_is_directory=True)


def _symlinked_student_folder(student, outside):
    real = outside / "a-student-folder"
    _notebook_folder(real)
    shutil.copy(solution_path(ASSIGNMENT), real / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    student.symlink_to(real, target_is_directory=True)


def _hard_link_to_outside(student, outside):
    copy = outside / "solutions-copy.ipynb"   # the instructor's copy of the solutions, on the same disk
    shutil.copy(solution_path(ASSIGNMENT), copy)
    os.link(copy, _notebook_folder(student) / f"{ASSIGNMENT}.ipynb")


def _hard_link_inside(student, outside):
    """Two names inside SUBMISSIONS (an archive's hard link between two students' files): graded."""
    other = student.parent / "honest" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    os.link(other, _notebook_folder(student) / f"{ASSIGNMENT}.ipynb")


def _named_pipe(student, outside):
    os.mkfifo(_notebook_folder(student) / f"{ASSIGNMENT}.ipynb")


def _solution(student, outside):
    shutil.copy(solution_path(ASSIGNMENT), _notebook_folder(student) / f"{ASSIGNMENT}.ipynb")


def _empty(student, outside):
    student.mkdir()


def _unzipped_on_a_mac(student, outside):
    """The work, with the litter of a zip made on macOS and of JupyterLab: none of it is another notebook."""
    _solution(student, outside)
    folder = student / ASSIGNMENT
    (folder / f"._{ASSIGNMENT}.ipynb").write_bytes(APPLE_DOUBLE)
    (folder / f".~{ASSIGNMENT}.ipynb").write_text("{ half written")
    (folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(release_path(ASSIGNMENT), folder / ".ipynb_checkpoints" / f"{ASSIGNMENT}-checkpoint.ipynb")
    (student / "__MACOSX" / ASSIGNMENT).mkdir(parents=True)
    (student / "__MACOSX" / ASSIGNMENT / f"._{ASSIGNMENT}.ipynb").write_bytes(APPLE_DOUBLE)
    (student / ".ipynb_checkpoints").mkdir()
    (student / f"._{ASSIGNMENT}").write_bytes(APPLE_DOUBLE)
    macosx = student.parent / "__MACOSX" / student.name / ASSIGNMENT   # beside the students, at the top
    macosx.mkdir(parents=True, exist_ok=True)
    (macosx / f"._{ASSIGNMENT}.ipynb").write_bytes(APPLE_DOUBLE)
    (student.parent / f"._{student.name}").write_bytes(APPLE_DOUBLE)


PLANTED = {
    "symlink-to-solutions": Planted(_symlinked_notebook(TO_SOLUTIONS), 0, "symbolic link"),
    "symlink-absolute": Planted(_symlinked_notebook(solution_path(ASSIGNMENT)), 0, "symbolic link"),
    "symlink-dangling": Planted(_symlinked_notebook("/nowhere/at/all.ipynb"), 0, "symbolic link"),
    "symlinked-assignment-folder": Planted(_symlinked_assignment_folder, 0, "assignment folder is a symbolic link"),
    "symlinked-student-folder": Planted(_symlinked_student_folder, None, "student folder is a symbolic link"),
    "hard-link-to-outside": Planted(_hard_link_to_outside, 0, "hard link to a file outside SUBMISSIONS"),
    "hard-link-inside": Planted(_hard_link_inside, FULL),
    "named-pipe": Planted(_named_pipe, 0, "not a regular file"),
    ".hidden-student": Planted(_solution, FULL),
    ".hidden-and-empty": Planted(_empty, None, "starts with a dot"),
    "unzipped-on-a-mac": Planted(_unzipped_on_a_mac, FULL),
}


def plant_all(submissions: Path, outside: Path) -> None:
    """Every planted student under `submissions` (after the corpus: one links to the student "honest")."""
    outside.mkdir(parents=True, exist_ok=True)
    for name, planted in PLANTED.items():
        planted.plant(submissions / name, outside)
