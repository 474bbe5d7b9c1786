"""Find the submissions under SUBMISSIONS/<student_id>/<assignment_id>/ and sort out broken ones.

Returns the submissions to grade and, for every one that cannot be graded, a reason a person
understands (it goes to errors.csv and scores 0). Nothing here runs student code, and nothing a
file holds can raise out of here: reading, decoding, parsing and validating are all bounded.

Inputs are files, not links. Archives keep symbolic links (unzip, tar), so a "notebook" can be a link to
the instructor's solutions, and a hard link can give a file outside SUBMISSIONS a name inside it. The tree
is walked one folder at a time, each folder and file opened relative to its parent with O_NOFOLLOW and
compared (device, inode) with what was listed: a symbolic link at any level (student folder, assignment
folder, notebook) is refused, never followed, and a notebook with several names is graded only when every
one of them lies inside SUBMISSIONS. A notebook is read from the descriptor that was checked; a later read
(the grading worker's) checks that it opened that same file (model.FileId).

What archivers and editors leave behind (__MACOSX, AppleDouble `._*` files, .ipynb_checkpoints, Jupyter's
`.~*` temporary files) is never a student, an assignment or a notebook. A student folder whose name starts
with a dot is a student like any other when it holds an assignment folder, and a line of errors.csv
otherwise: no folder vanishes from the outputs.

A notebook one folder off is graded and flagged, never a "no submission": one in the student folder itself whose
name names the assignment (`alice/01_attention.ipynb`; or names none, when the class is graded for that one
assignment), one in a subfolder of an assignment folder that holds none (`alice/01_attention/sub/01_attention.ipynb`).
An LMS's download is first copied into this layout by intake.py.
"""
import codecs
import errno
import json
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4.rwbase import rejoin_lines

from autograder.model import FileId

LITTER = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".DS_Store", ".Trashes", ".Spotlight-V100", ".fseventsd"}
APPLE_DOUBLE = "._"   # macOS's resource-fork files in zips: ._01_attention.ipynb
MAX_NOTEBOOK_BYTES = 50 * 2**20   # a notebook with its outputs; more is not a submission
MAX_DEPTH = 64        # folders below SUBMISSIONS searched for the other names of a hard-linked file
BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC   # NONBLOCK: a FIFO cannot hang us
NOT_FOLLOWED = "a link is never followed: hand in the files themselves"


class Cause(Enum):
    """Why a folder of SUBMISSIONS gives no notebook to grade."""
    NO_SUBMISSION = "no submission"
    UNKNOWN_ASSIGNMENT = "unknown assignment"
    NOT_A_STUDENT = "a hidden folder without assignments"
    NOBODYS = "a file that names no student"   # in an LMS's download, or a notebook outside any student folder
    NO_NOTEBOOK = "no notebook"
    UNREADABLE = "not a readable notebook"
    LINK = "a symbolic or hard link"
    NOT_A_FILE = "not a regular file"


@dataclass(frozen=True)
class Submission:
    student_id: str
    assignment: str
    notebook: Path                 # the .ipynb to grade
    flags: tuple[str, ...] = ()    # e.g. which of several notebooks was picked, and why
    file_id: FileId | None = None  # the file that was checked


@dataclass(frozen=True)
class Problem:
    student_id: str
    assignment: str
    cause: Cause
    reason: str                    # for a person, in errors.csv


@dataclass(frozen=True)
class Choice:
    """The notebook to grade in one assignment folder, or why there is none."""
    notebook: Path | None
    file_id: FileId | None = None
    flags: tuple[str, ...] = ()
    cause: Cause | None = None
    reason: str = ""


class Kind(Enum):
    FOLDER = "folder"
    FILE = "file"
    SYMLINK = "symbolic link"
    SPECIAL = "special file"       # a FIFO, socket or device


@dataclass(frozen=True)
class Entry:
    """A name in a folder, as lstat saw it (a link is not followed)."""
    name: str
    kind: Kind
    file_id: FileId
    names: int                     # how many names (hard links) the file has
    mtime: float


def is_litter(name: str) -> bool:
    """Whether a name is what an archiver or editor leaves behind, never a submission."""
    return name in LITTER or name.startswith(APPLE_DOUBLE) or name.startswith(".~")


def _kind(mode: int) -> Kind:
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    if stat.S_ISDIR(mode):
        return Kind.FOLDER
    return Kind.FILE if stat.S_ISREG(mode) else Kind.SPECIAL


def _entries(folder_fd: int) -> list[Entry]:
    """The entries of an open folder, sorted by name; none if it cannot be listed."""
    try:
        names = sorted(os.listdir(folder_fd))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except OSError:
            continue   # gone since it was listed
        found.append(Entry(name, _kind(info.st_mode), FileId(info.st_dev, info.st_ino), info.st_nlink, info.st_mtime))
    return found


def _open_folder(parent_fd: int, entry: Entry) -> int:
    """A descriptor of the folder `entry` of `parent_fd`: never through a link, and only if it is the folder
    that was listed (OSError otherwise)."""
    fd = os.open(entry.name, FOLDER_FLAGS, dir_fd=parent_fd)
    info = os.fstat(fd)
    if FileId(info.st_dev, info.st_ino) != entry.file_id:
        os.close(fd)
        raise OSError(errno.ESTALE, "the folder changed while it was being read")
    return fd


def _count_names(root_fd: int) -> Counter[FileId]:
    """{FileId: how many names it has} of the regular files below `root_fd`, links not followed."""
    counts: Counter[FileId] = Counter()

    def visit(fd: int, depth: int) -> None:
        for entry in _entries(fd):
            if entry.kind is Kind.FILE:
                counts[entry.file_id] += 1
            elif entry.kind is Kind.FOLDER and depth < MAX_DEPTH:
                try:
                    sub = _open_folder(fd, entry)
                except OSError:
                    continue
                try:
                    visit(sub, depth + 1)
                finally:
                    os.close(sub)
    visit(root_fd, 0)
    return counts


class Census:
    """How many names of a file lie inside SUBMISSIONS; the tree is counted once, the first time a file
    with several names (a hard link) is met."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.counts: Counter[FileId] | None = None

    def names_inside(self, file_id: FileId) -> int:
        if self.counts is None:
            self.counts = _count_names(self.root_fd)
        return self.counts[file_id]


# --- reading one file ---------------------------------------------------------------------------------
def read_file(path: str | os.PathLike[str], expected: FileId | None = None,
              folder_fd: int | None = None) -> tuple[bytes | None, str | None]:
    """(the bytes of a regular file, None), or (None, why not). The file is opened without following a
    symbolic link and, when `expected` is given, read only if it is that very file."""
    try:
        fd = os.open(path, FILE_FLAGS, dir_fd=folder_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, f"refused: the notebook is a symbolic link ({NOT_FOLLOWED})"
        return None, f"the file cannot be read ({error.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a notebook: not a regular file (a folder, pipe, socket or device)"
        if expected is not None and FileId(info.st_dev, info.st_ino) != expected:
            return None, "the notebook changed after the submissions were collected"
        if info.st_size > MAX_NOTEBOOK_BYTES:
            return None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        data = _read_at_most(fd, MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        return None, f"the file cannot be read ({error.strerror})"
    finally:
        os.close(fd)
    if len(data) > MAX_NOTEBOOK_BYTES:   # it grew while being read
        return None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    return data, None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# --- parsing one notebook -----------------------------------------------------------------------------
def parse_notebook(data: bytes) -> tuple[NotebookNode | None, str | None]:
    """(NotebookNode, None) for the bytes of a Jupyter notebook, else (None, why not). What nbformat
    requires and an honest editor leaves out is filled in first (`_complete`); sources are joined into
    strings."""
    encoding = next((name for bom, name in BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text"
    if not text.strip():
        return None, "the notebook file is empty"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not a valid notebook: broken JSON at line {error.lineno}, column {error.colno}"
    except RecursionError:
        return None, "not a valid notebook: the JSON is nested too deeply"
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        return None, "not a valid notebook: the JSON has no list of cells"
    if not content["cells"]:
        return None, "not a valid notebook: it has no cells"
    if content.get("nbformat") != 4:
        return None, f"not a valid notebook: nbformat {content.get('nbformat')!r}, this course uses 4"
    _complete(content)
    try:
        notebook = nbformat.from_dict(content)
        nbformat.validate(notebook)
    except RecursionError:
        return None, "not a valid notebook: the JSON is nested too deeply"
    except Exception as error:  # nbformat's validation errors have many types
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"not a valid notebook: {type(error).__name__}: {first_line}"
    joined: NotebookNode = rejoin_lines(notebook)
    return joined, None


def _complete(content: dict[str, Any]) -> None:
    """Fill in, in place, the fields nbformat requires that some editors leave out: metadata (of the
    notebook, of a cell, of an output), a code cell's outputs and execution_count, an execute_result's
    execution_count; version 4.5 when cells carry ids, and then an id for every cell. A field that is there
    with a wrong type is left for validation to report."""
    content.setdefault("metadata", {})
    cells = [cell for cell in content["cells"] if isinstance(cell, dict)]
    for cell in cells:
        cell.setdefault("metadata", {})
        cell.setdefault("source", "")
        if cell.get("cell_type") == "code":
            cell.setdefault("execution_count", None)
            outputs = cell.setdefault("outputs", [])
            for output in outputs if isinstance(outputs, list) else []:
                if isinstance(output, dict) and output.get("output_type") in ("display_data", "execute_result"):
                    output.setdefault("metadata", {})
                if isinstance(output, dict) and output.get("output_type") == "execute_result":
                    output.setdefault("execution_count", None)
    minor = content.get("nbformat_minor")
    minor = minor if isinstance(minor, int) and not isinstance(minor, bool) else 4
    if any("id" in cell for cell in cells):
        minor = max(minor, 5)   # ids exist only from 4.5 on: a 4.4 file with ids is invalid otherwise
    content["nbformat_minor"] = minor
    if minor >= 5:
        give_cell_ids(cells)


CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def give_cell_ids(cells: Iterable[dict[str, Any]]) -> None:
    """Give every cell a valid id of its own (nbformat 4.5): a missing, malformed or repeated id is replaced."""
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id) or cell_id in seen:
            cell_id = f"cell-{i}"
        while cell_id in seen:
            cell_id += "-"
        cell["id"] = cell_id
        seen.add(cell_id)


def read_notebook(path: str | os.PathLike[str], expected: FileId | None = None,
                  folder_fd: int | None = None) -> tuple[NotebookNode | None, str | None]:
    """(NotebookNode, None) for a readable Jupyter notebook, else (None, why not). A symbolic link is
    refused, never followed; with `expected`, only that very file is read."""
    data, reason = read_file(path, expected, folder_fd)
    return (None, reason) if data is None else parse_notebook(data)


# --- choosing the notebook of an assignment folder ----------------------------------------------------
def _work_in(notebook: NotebookNode) -> tuple[int, int]:
    """How much of the assignment a notebook holds: (stubs filled in, characters of code)."""
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    return (-sum("raise NotImplementedError" in source for source in code), sum(len(source) for source in code))


def name_key(text: str) -> str:
    """A name reduced to what every writer of it keeps: its letters and digits, case folded (Unicode NFKC), so that
    "01_attention (1).ipynb", "01-Attention.ipynb" and "01attention" compare alike."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def assignment_named(filename: str, known: Iterable[str]) -> str | None:
    """The assignment whose id a file name holds ("01_attention-1.ipynb", "alice_01_attention.ipynb",
    "01-Attention (2).ipynb"), compared by name_key; of several, the longest id. None when it names none."""
    key = name_key(filename)
    named = [a for a in known if name_key(a) and name_key(a) in key]
    return max(named, key=lambda a: (len(name_key(a)), a)) if named else None


def _is_candidate(entry: Entry) -> bool:
    return entry.name.endswith(".ipynb") and not entry.name.startswith(".") and entry.kind is not Kind.FOLDER


def _names(entries: Iterable[Entry]) -> str:
    return ", ".join(entry.name for entry in entries)


def _refusal(entries: list[Entry], census: Census) -> tuple[Cause | None, str]:
    """Why a folder's notebooks are refused ((None, "") when they are not): a symbolic link, a special file,
    a hard link with a name outside SUBMISSIONS."""
    links = [e for e in entries if e.kind is Kind.SYMLINK]
    if links:
        return Cause.LINK, f"refused: {_names(links)}: a symbolic link ({NOT_FOLLOWED})"
    special = [e for e in entries if e.kind is Kind.SPECIAL]
    if special:
        return Cause.NOT_A_FILE, f"refused: {_names(special)}: not a regular file (a pipe, socket or device)"
    for entry in entries:
        inside = census.names_inside(entry.file_id) if entry.names > 1 else 1
        if inside < entry.names:
            return Cause.LINK, (f"refused: {entry.name} is a hard link to a file outside SUBMISSIONS (it has "
                                f"{entry.names} names, {inside} of them inside): hand in a copy of the notebook")
    return None, ""


@dataclass(frozen=True)
class _Candidate:
    """A notebook file that may be the one to grade: the folder it lies in (open), its path and its listing."""
    folder_fd: int
    path: Path
    entry: Entry
    shown: str          # its name as a person reads it in a flag: "01_attention.ipynb", "sub/01_attention.ipynb"


def _pick(candidates: list[_Candidate], assignment: str, census: Census, flags: tuple[str, ...] = ()) -> Choice:
    """The notebook to grade among `candidates` (at least one), or why none is."""
    entries = [c.entry for c in candidates]
    cause, refusal = _refusal(entries, census)
    if cause is not None:
        return Choice(None, cause=cause, reason=refusal)
    read = [read_notebook(c.entry.name, c.entry.file_id, c.folder_fd) for c in candidates]
    readable = [(c, notebook) for c, (notebook, _) in zip(candidates, read) if notebook is not None]
    if not readable:
        shown = next((i for i, c in enumerate(candidates) if c.entry.name == f"{assignment}.ipynb"), 0)
        return Choice(None, cause=Cause.UNREADABLE, reason=read[shown][1] or "")
    chosen, _ = max(readable, key=lambda pair: (_work_in(pair[1]), pair[0].entry.name == f"{assignment}.ipynb",
                                                 pair[0].entry.mtime, pair[0].shown))
    if len(candidates) > 1:
        flags += (f"several notebooks ({', '.join(c.shown for c in candidates)}): graded {chosen.shown}, "
                  f"the one with the most work in it",)
    return Choice(chosen.path, chosen.entry.file_id, flags)


def _choose(folder_fd: int, folder: Path, assignment: str, census: Census) -> Choice:
    entries = [e for e in _entries(folder_fd) if _is_candidate(e)]
    if entries:
        return _pick([_Candidate(folder_fd, folder / e.name, e, e.name) for e in entries], assignment, census)
    below = _choose_below(folder_fd, folder, assignment, census)
    if below is not None:
        return below
    return Choice(None, cause=Cause.NO_NOTEBOOK, reason=f"no notebook: expected {assignment}.ipynb in the submission folder")


def _choose_below(folder_fd: int, folder: Path, assignment: str, census: Census) -> Choice | None:
    """The notebook of an assignment folder that holds none itself, from its subfolders (one level down, links not
    followed): `<assignment>/sub/<assignment>.ipynb` is graded and flagged. None when they hold none either."""
    opened: list[int] = []
    candidates = []
    try:
        for sub in _entries(folder_fd):
            if sub.kind is not Kind.FOLDER or is_litter(sub.name):
                continue
            try:
                fd = _open_folder(folder_fd, sub)
            except OSError:
                continue
            opened.append(fd)
            candidates += [_Candidate(fd, folder / sub.name / e.name, e, f"{sub.name}/{e.name}")
                           for e in _entries(fd) if _is_candidate(e)]
        if not candidates:
            return None
        where = sorted({c.shown.split("/")[0] for c in candidates})
        flag = (f"one folder too deep: the notebook was handed in inside {', '.join(f + '/' for f in where)} of the "
                f"assignment folder (it belongs in the assignment folder itself); graded from there",)
        return _pick(candidates, assignment, census, flag)
    finally:
        for fd in opened:
            os.close(fd)


def find_notebook(folder: str | os.PathLike[str], assignment: str) -> Choice:
    """The notebook to grade in an assignment folder, or why there is none.

    One notebook is graded whatever its name ("01_attention (1).ipynb", renamed by a browser). Of
    several, the one with the most work in it (fewest stubs left, then most code; then the expected
    name, then the newest) is graded, and a flag says which. A link among them refuses the folder.
    """
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _choose(fd, folder, assignment, Census(fd))
    finally:
        os.close(fd)


# --- the whole class ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Student:
    entry: Entry
    folders: tuple[Entry, ...]  # its entries (litter left out)


def _list_students(root_fd: int, skip: set[FileId], problems: list[Problem]) -> list[_Student]:
    students = []
    for entry in _entries(root_fd):
        if is_litter(entry.name) or entry.file_id in skip:
            continue
        if entry.kind is Kind.SYMLINK:
            problems.append(Problem(entry.name, "", Cause.LINK,
                                    f"refused: the student folder is a symbolic link ({NOT_FOLLOWED})"))
            continue
        if entry.kind is not Kind.FOLDER:
            continue   # a loose file beside the student folders
        try:
            fd = _open_folder(root_fd, entry)
        except OSError as error:
            problems.append(Problem(entry.name, "", Cause.UNREADABLE, f"the student folder cannot be read ({error.strerror})"))
            continue
        try:
            inside = tuple(e for e in _entries(fd) if not is_litter(e.name) and e.file_id not in skip)
        finally:
            os.close(fd)
        students.append(_Student(entry, inside))
    return students


def _loose(student: _Student, assignment: str, known: set[str], graded: list[str]) -> list[Entry]:
    """The notebooks lying in the student's folder itself (one folder too high) that belong to `assignment`: those
    whose name names it, or, when the class is graded for this one assignment alone, a notebook that names none."""
    notebooks = [e for e in student.folders if _is_candidate(e)]
    named = [e for e in notebooks if assignment_named(e.name, known) == assignment]
    if named or graded != [assignment]:
        return named
    return [e for e in notebooks if assignment_named(e.name, known) is None]


def _submission(root_fd: int, root: Path, student: _Student, entry: Entry | None, assignment: str,
               census: Census, loose: list[Entry]) -> Submission | Problem:
    """The submission of one student and assignment, or the problem with it. `loose` are the student's notebooks
    of this assignment that lie in the student folder itself (graded, and flagged, when there is no assignment
    folder)."""
    name = student.entry.name
    if (entry is None or entry.kind not in (Kind.FOLDER, Kind.SYMLINK)) and loose:
        return _one_folder_too_high(root_fd, root, student, loose, assignment, census)
    if entry is None or entry.kind not in (Kind.FOLDER, Kind.SYMLINK):
        return Problem(name, assignment, Cause.NO_SUBMISSION, "no submission")
    if entry.kind is Kind.SYMLINK:
        return Problem(name, assignment, Cause.LINK, f"refused: the assignment folder is a symbolic link ({NOT_FOLLOWED})")
    try:
        student_fd = _open_folder(root_fd, student.entry)
        try:
            folder_fd = _open_folder(student_fd, entry)
        finally:
            os.close(student_fd)
    except OSError as error:
        return Problem(name, assignment, Cause.UNREADABLE, f"the submission folder cannot be read ({error.strerror})")
    try:
        choice = _choose(folder_fd, root / name / assignment, assignment, census)
    finally:
        os.close(folder_fd)
    if choice.notebook is None:
        assert choice.cause is not None   # a Choice without a notebook always says why
        return Problem(name, assignment, choice.cause, choice.reason)
    return Submission(name, assignment, choice.notebook, choice.flags, choice.file_id)


def _one_folder_too_high(root_fd: int, root: Path, student: _Student, loose: list[Entry], assignment: str,
                         census: Census) -> Submission | Problem:
    name = student.entry.name
    try:
        student_fd = _open_folder(root_fd, student.entry)
    except OSError as error:
        return Problem(name, assignment, Cause.UNREADABLE, f"the student folder cannot be read ({error.strerror})")
    try:
        flag = (f"one folder too high: {_names(loose)} lay in the student folder, not in {name}/{assignment}/; "
                f"graded from there",)
        choice = _pick([_Candidate(student_fd, root / name / e.name, e, e.name) for e in loose], assignment, census, flag)
    finally:
        os.close(student_fd)
    if choice.notebook is None:
        assert choice.cause is not None
        return Problem(name, assignment, choice.cause, choice.reason)
    return Submission(name, assignment, choice.notebook, choice.flags, choice.file_id)


def collect(submissions: str | os.PathLike[str], known_assignments: Iterable[str],
            skip: Iterable[str | os.PathLike[str]] = ()) -> tuple[list[Submission], list[Problem]]:
    """(submissions to grade, problems) for every student folder under `submissions`.

    An assignment is graded for every student as soon as one student submitted it; a student
    without that folder gets a "no submission" problem (and a score of 0). Folders in `skip` (the
    grader's own output folder, when it lies inside `submissions`) are not students.
    """
    root = Path(submissions).resolve()
    skip_ids = {FileId(info.st_dev, info.st_ino) for path in skip for info in [_stat(path)] if info is not None}
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _collect(root_fd, root, set(known_assignments), skip_ids)
    finally:
        os.close(root_fd)


def _stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _collect(root_fd: int, root: Path, known: set[str], skip: set[FileId]) -> tuple[list[Submission], list[Problem]]:
    found: list[Submission] = []
    problems: list[Problem] = []
    students = []
    for student in _list_students(root_fd, skip, problems):
        names = {e.name for e in student.folders}
        if student.entry.name.startswith(".") and not names & known:
            problems.append(Problem(student.entry.name, "", Cause.NOT_A_STUDENT,
                                    "a folder whose name starts with a dot, with no assignment folder of this course: "
                                    "not graded as a student"))
        else:
            students.append(student)
    submitted = {e.name for s in students for e in s.folders if e.kind in (Kind.FOLDER, Kind.SYMLINK)}
    named = {assignment_named(e.name, known) for s in students for e in s.folders if _is_candidate(e)}
    assignments = sorted((submitted & known) | {a for a in named if a is not None})
    census = Census(root_fd)
    for student in students:
        folders = {e.name: e for e in student.folders}
        for entry in student.folders:
            if entry.name not in known and entry.kind in (Kind.FOLDER, Kind.SYMLINK) and not entry.name.startswith("."):
                problems.append(Problem(student.entry.name, entry.name, Cause.UNKNOWN_ASSIGNMENT,
                                        f"unknown assignment (this course has: {', '.join(sorted(known))})"))
        for assignment in assignments:
            outcome = _submission(root_fd, root, student, folders.get(assignment), assignment, census,
                                  _loose(student, assignment, known, assignments))
            if isinstance(outcome, Submission):
                found.append(outcome)
            else:
                problems.append(outcome)
    return found, problems
