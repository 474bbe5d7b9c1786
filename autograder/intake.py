"""What was handed in: SUBMISSIONS read as nbgrader's submitted layout or as an LMS's download, matched to the roster.

SUBMISSIONS is a folder or a zip file, as it comes:

    nbgrader's layout    <student_id>/<assignment>/<assignment>.ipynb, read in place by collect.py
    Canvas's download    "Download Submissions": flat files <name>[_LATE]_<user id>_<attachment id>_<file name>
                         (Canvas's ContentZipper: the sortable name lowercased with all but letters, digits and _
                         removed; `anon_<id>` when grading is anonymous; <file name> is the student's own, which
                         Canvas renames `01_attention-1.ipynb` for a second file of one name)
    Moodle's download    "Download all submissions": a folder per student,
                         `<Full Name>_<participant>_assignsubmission_file_` (Moodle 4.1 and later drop the last _),
                         holding the files as uploaded, subfolders kept; with "download submissions in folders" off,
                         flat files `<Full Name>_<participant>_assignsubmission_file_<file>`
    a folder of notebooks  flat files that name the student and the assignment (`alice_01_attention.ipynb`)

A zip is unpacked into the scratch folder first: regular files only (a link in it is refused, never made, and so is a
path that leads out of it), each at most collect.MAX_NOTEBOOK_BYTES, 4 GiB in all. A folder that holds one folder
and nothing else (what unzipping often makes) is read from inside. An LMS's files are credited to students (the
roster's, or without a roster the LMS's own names: `smithjohn_12345`, `Jo Smith_4242`), and copied into nbgrader's
layout in the scratch folder, where collect.py reads them as any class: the rest of the grader sees one layout. A
file's assignment is the one its name names (collect.assignment_named); a name that names none is the download's
one assignment (a Canvas or Moodle download holds one), or `--assignment`'s.

Nothing is lost quietly: a file credited to no roster student is graded under the LMS's name for it and flagged, a
file that says no student is a row of errors.csv, a roster student who handed in nothing scores 0 with a reason,
and SUBMISSIONS that yields no submission at all is an error (NothingToGrade), never an empty success.
"""
from __future__ import annotations

import dataclasses
import os
import re
import stat
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from autograder.collect import (FOLDER_FLAGS, MAX_NOTEBOOK_BYTES, NOT_FOLLOWED, Cause, Census, Entry, Kind, Problem,
                                Submission, _entries, _open_folder, _refusal, assignment_named, collect, is_litter,
                                read_file)
from autograder.model import FileId
from autograder.roster import Roster, Student

MAX_MEMBERS = 20_000           # files in a zip
MAX_UNPACKED = 4 * 2**30       # bytes unpacked from a zip, in all
MAX_DEPTH = 4                  # folders below a Moodle submission folder that are searched
NOTEBOOK = re.compile(r".*\.ipynb", flags=re.I)


class Layout(Enum):
    NBGRADER = "nbgrader's submitted layout"
    CANVAS = "a Canvas download"
    MOODLE = "a Moodle download"
    FILES = "a folder of notebooks"


class IntakeError(Exception):
    """SUBMISSIONS cannot be read as a class (the command line says why and exits with status 2)."""


class NothingToGrade(IntakeError):
    """SUBMISSIONS yields no submission at all."""


# --- the names LMSs give files ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LmsName:
    """What an LMS's name for a handed-in file says."""
    who: str           # the student's name as the LMS wrote it: Canvas "smithjohn", Moodle "Jo Smith"
    lms_id: str        # Canvas's user id ("anon_..." when anonymous), Moodle's participant number
    prefix: str        # the LMS's part of the name: "smithjohn_LATE_12345_67890", "Jo Smith_4242_assignsubmission_file"
    filename: str      # the student's own file name (Moodle: its path inside the submission folder)
    late: bool = False
    attachment: str = ""   # Canvas's attachment id
    kind: str = "file"     # "file"; Canvas "text" or "link" entries; Moodle's plugin ("onlinetext", ...)

    @property
    def student(self) -> str:
        """The student's id without a roster: the LMS's name and number."""
        return f"{self.who}_{self.lms_id}" if self.who else self.lms_id


CANVAS_ID = r"(?P<id>\d+|anon_[A-Za-z0-9]+)"
CANVAS_FILE = re.compile(rf"(?:(?P<late>LATE)_)?{CANVAS_ID}_(?P<attachment>\d+)_(?P<filename>.+)", flags=re.S)
CANVAS_ENTRY = re.compile(rf"(?:(?P<late>LATE)_)?{CANVAS_ID}_(?P<kind>text|link)\.html", flags=re.S)
MOODLE_FOLDER = re.compile(r"(?P<who>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?", flags=re.S)
MOODLE_FILE = re.compile(r"(?P<who>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<filename>.+)", flags=re.S)


def canvas_name(filename: str) -> LmsName | None:
    """What a file name of Canvas's download says, read as Canvas reads its own names back (the first two numbers
    between underscores are the user and the attachment: a name cannot hold `_<digits>_`, Canvas removes it, while
    the student's file name may start with digits, `01_attention.ipynb`). None when Canvas does not write it."""
    for cut in [-1] + [i for i, c in enumerate(filename) if c == "_"]:
        who, tail = filename[:max(cut, 0)], filename[cut + 1:]
        if cut == -1 and not tail.startswith(("anon_", "LATE_anon_")):
            continue   # only an anonymous name has no student's name before the ids
        entry = CANVAS_FILE.fullmatch(tail) or CANVAS_ENTRY.fullmatch(tail)
        if entry is None:
            continue
        parts = entry.groupdict()
        own = parts.get("filename")
        prefix = filename[:len(filename) - len(own) - 1] if own else filename[:-len(f"_{parts['kind']}.html")]
        return LmsName(who=who, lms_id=parts["id"], prefix=prefix, filename=own or filename, late=bool(parts["late"]),
                       attachment=parts.get("attachment") or "", kind=parts.get("kind") or "file")
    return None


def moodle_name(name: str, folder: bool) -> LmsName | None:
    """What the name of an entry at the top of Moodle's download says: a submission folder (`folder`), or a file
    of a download made without folders. None when it is neither."""
    match = (MOODLE_FOLDER if folder else MOODLE_FILE).fullmatch(name)
    if match is None:
        return None
    parts = match.groupdict()
    prefix = f"{parts['who']}_{parts['id']}_assignsubmission_{parts['plugin']}"
    return LmsName(who=parts["who"], lms_id=parts["id"], prefix=prefix, filename=parts.get("filename") or "",
                   kind=parts["plugin"])


# --- unpacking a zip --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """A file of SUBMISSIONS that is not read, and why."""
    parts: tuple[str, ...]     # its path below SUBMISSIONS
    reason: str
    cause: Cause = Cause.LINK


def unpack(archive: Path, dest: Path) -> list[Refused]:
    """Unpack the zip `archive` into the new folder `dest`, regular files only; returns what was refused. Raises
    IntakeError when it is not a zip that can be read, or holds more than MAX_MEMBERS files or MAX_UNPACKED bytes."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise IntakeError(f"SUBMISSIONS {archive} is a file, but not a zip archive that can be read ({error}): give "
                          f"the zip that the LMS made, or a folder") from None
    refused: list[Refused] = []
    dest.mkdir(parents=True, mode=0o700)
    total = 0
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise IntakeError(f"{archive} holds {len(members)} files, more than the {MAX_MEMBERS} a class may have")
        for info in members:
            parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p not in ("", "."))
            if not parts or any(is_litter(p) for p in parts):
                continue
            mode = info.external_attr >> 16
            why = _unpackable(info, parts, mode)
            if why:
                refused.append(Refused(parts, why[0], why[1]))
                continue
            target = dest.joinpath(*parts)
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True, mode=0o700)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with zf.open(info) as source:
                    data = source.read(MAX_NOTEBOOK_BYTES + 1)
                if len(data) > MAX_NOTEBOOK_BYTES:
                    refused.append(Refused(parts, f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB", Cause.UNREADABLE))
                    continue
                total += len(data)
                if total > MAX_UNPACKED:
                    raise IntakeError(f"{archive} unpacks to more than {MAX_UNPACKED // 2**30} GiB")
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            except FileExistsError:
                refused.append(Refused(parts, "its name appears twice in the zip", Cause.UNREADABLE))
            except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError, EOFError) as error:
                refused.append(Refused(parts, f"cannot be unpacked ({type(error).__name__}: {error})", Cause.UNREADABLE))
    return refused


def _unpackable(info: zipfile.ZipInfo, parts: tuple[str, ...], mode: int) -> tuple[str, Cause] | None:
    if ".." in parts:
        return "refused: its path in the zip leads out of it", Cause.LINK
    if stat.S_ISLNK(mode):
        return f"refused: a symbolic link in the zip ({NOT_FOLLOWED})", Cause.LINK
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):   # 0: a zip made without Unix's file types
        return "refused: not a regular file (a pipe, socket or device)", Cause.NOT_A_FILE
    if info.flag_bits & 0x1:
        return "the file is encrypted in the zip", Cause.UNREADABLE
    if not info.is_dir() and info.file_size > MAX_NOTEBOOK_BYTES:
        return f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB", Cause.UNREADABLE
    return None


# --- reading a folder -------------------------------------------------------------------------------------------
def _listing(path: Path, skip: set[FileId]) -> list[Entry]:
    """The entries of a folder, litter and skipped folders left out; none when it cannot be opened (or is a link)."""
    try:
        fd = os.open(path, FOLDER_FLAGS)
    except OSError:
        return []
    try:
        return [e for e in _entries(fd) if not is_litter(e.name) and e.file_id not in skip]
    finally:
        os.close(fd)


def _is_student_folder(path: Path, known: Iterable[str], skip: set[FileId]) -> bool:
    """Whether a folder looks like a student's of nbgrader's layout: an assignment folder, or a notebook that
    names an assignment, in it."""
    known = list(known)
    return any((e.kind is Kind.FOLDER and e.name in known) or (NOTEBOOK.fullmatch(e.name) and assignment_named(e.name, known))
               for e in _listing(path, skip))


def unwrap(root: Path, known: Iterable[str], skip: set[FileId]) -> Path:
    """The folder that holds the class: `root`, or the one folder it holds alone (at most three times over), unless
    that folder is a Moodle submission's or one student's of nbgrader's layout (an assignment folder in it, or a
    notebook that names an assignment; several such notebooks and nothing else are a flat class)."""
    for _ in range(3):
        entries = _listing(root, skip)
        if len(entries) != 1 or entries[0].kind is not Kind.FOLDER or moodle_name(entries[0].name, folder=True):
            break
        inner = root / entries[0].name
        layout = detect(inner, skip)
        flat_class = layout is Layout.FILES and sum(bool(NOTEBOOK.fullmatch(e.name)) for e in _listing(inner, skip)) > 1
        if layout not in (Layout.CANVAS, Layout.MOODLE) and not flat_class and _is_student_folder(inner, known, skip):
            break
        root = inner
    return root


def detect(root: Path, skip: set[FileId]) -> Layout:
    """The layout of the class folder `root`, from the names at its top."""
    entries = _listing(root, skip)
    moodle = [e for e in entries if moodle_name(e.name, folder=e.kind is Kind.FOLDER)]
    if moodle and 2 * len(moodle) >= len(entries):
        return Layout.MOODLE
    if any(e.kind is Kind.FOLDER for e in entries) or not entries:
        return Layout.NBGRADER
    if any(canvas_name(e.name) for e in entries):
        return Layout.CANVAS
    return Layout.FILES


@dataclass(frozen=True)
class _File:
    """A file of an LMS's download."""
    parts: tuple[str, ...]     # its path below the class folder
    data: bytes | None = None  # a notebook's bytes (None for another file, or one refused)
    refused: Refused | None = None

    @property
    def shown(self) -> str:
        return "/".join(self.parts)


def _files(root: Path, skip: set[FileId], depth: int) -> list[_File]:
    """Every file below `root`, at most `depth` folders down, links not followed: a notebook with its bytes (read
    from the descriptor that was checked), a link, a special file or a hard link to a file outside refused."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        census = Census(fd)
        found: list[_File] = []
        _visit(fd, (), skip, depth, census, found)
        return found
    finally:
        os.close(fd)


def _visit(fd: int, parts: tuple[str, ...], skip: set[FileId], depth: int, census: Census, found: list[_File]) -> None:
    for entry in _entries(fd):
        if is_litter(entry.name) or entry.file_id in skip:
            continue
        here = parts + (entry.name,)
        if entry.kind is Kind.FOLDER:
            if depth > 0:
                try:
                    sub = _open_folder(fd, entry)
                except OSError:
                    continue
                try:
                    _visit(sub, here, skip, depth - 1, census, found)
                finally:
                    os.close(sub)
            continue
        cause, why = _refusal([entry], census)
        if cause is not None:
            found.append(_File(here, refused=Refused(here, why, cause)))
        elif NOTEBOOK.fullmatch(entry.name):
            data, unreadable = read_file(entry.name, entry.file_id, fd)
            found.append(_File(here, data) if data is not None else
                         _File(here, refused=Refused(here, unreadable or "", Cause.UNREADABLE)))
        else:
            found.append(_File(here))


# --- crediting files to students --------------------------------------------------------------------------------
@dataclass
class _Credit:
    """Who a file is credited to, and for which assignment."""
    file: _File
    name: LmsName | None        # the LMS's name for it (None: a file of no LMS's pattern)
    student: str | None = None  # None: it says no student
    assignment: str | None = None
    flags: list[str] = field(default_factory=list)
    unmatched: str = ""         # why it is credited to no roster student ("" when it is)

    @property
    def filename(self) -> str:
        """The student's own name of the file (its last part)."""
        return (self.name.filename if self.name else self.file.parts[-1]).split("/")[-1]


def _credit_canvas(file: _File, roster: Roster | None) -> _Credit | None:
    name = canvas_name(file.parts[-1])
    if name is None:
        return None
    credit = _canvas(file, name, roster)
    if name.late:
        credit.flags.append("Canvas marked it LATE")
    return credit


def _canvas(file: _File, name: LmsName, roster: Roster | None) -> _Credit:
    if roster is None:
        return _Credit(file, name, name.student)
    student = roster.by_canvas_id(name.lms_id)
    if student is not None:
        return _Credit(file, name, student.student_id)
    if name.lms_id.startswith("anon_"):
        return _Credit(file, name, name.student, unmatched="an anonymous name (Canvas's anonymous grading): no "
                                                           "roster student can be found for it")
    unnumbered = [s for s in roster.by_name(name.who) if not s.canvas_id]
    if len(unnumbered) == 1:
        return _Credit(file, name, unnumbered[0].student_id)
    return _Credit(file, name, name.student, unmatched=_no_match(roster, name.who, f"Canvas user {name.lms_id}",
                                                                 unnumbered))


def _no_match(roster: Roster, who: str, number: str, candidates: Iterable[Student]) -> str:
    several = [s.student_id for s in candidates]
    if len(several) > 1:
        return f"{who!r} ({number}) is the name of several students of the roster ({', '.join(several)})"
    return f"{who!r} ({number}) matches no student of the roster {roster.path}".rstrip()


def _credit_moodle(file: _File, roster: Roster | None) -> _Credit | None:
    top = file.parts[0]
    name = moodle_name(top, folder=len(file.parts) > 1)
    if name is None:
        return None
    if len(file.parts) > 1:
        name = dataclasses.replace(name, filename="/".join(file.parts[1:]))
    credit = _Credit(file, name, name.student)
    if len(file.parts) > 2:
        credit.flags.append(f"one folder too deep: handed in as {'/'.join(file.parts[1:])}, inside a folder of the "
                            f"Moodle submission; graded from there")
    if roster is None:
        return credit
    found = roster.by_name(name.who)
    if not found and "-" in name.who:   # a team submission: "<group>-<Full Name>"
        found = next((roster.by_name(name.who[i + 1:]) for i, c in enumerate(name.who)
                      if c == "-" and roster.by_name(name.who[i + 1:])), ())
    if len(found) == 1:
        credit.student = found[0].student_id
    else:
        credit.unmatched = _no_match(roster, name.who, f"Moodle participant {name.lms_id}", found)
    return credit


def _credit_plain(file: _File, roster: Roster | None, known: list[str]) -> _Credit:
    """A file of no LMS's pattern: `<student>_<assignment>.ipynb` or alike; the student is what is left of its
    name without the assignment's id and a copy's number."""
    name = file.parts[-1]
    stem = re.sub(r"\.[A-Za-z0-9]{1,8}$", "", name)
    words = [w for w in re.split(r"[\s_\-.()\[\]]+", stem) if w]
    assignment = assignment_named(name, known)
    if assignment:
        ids = [w.casefold() for w in re.split(r"[\s_\-.]+", assignment) if w]
        for i in range(len(words) - len(ids) + 1):
            if [w.casefold() for w in words[i:i + len(ids)]] == ids:
                words = words[:i] + words[i + len(ids):]
                break
    if len(words) > 1 and words[-1].isdigit() and len(words[-1]) <= 2:
        words = words[:-1]   # a copy's number: "alice_01_attention (1).ipynb"
    who = "_".join(words)
    found = roster.by_id_or_name(who) if roster is not None and who else ()
    if len(found) == 1:
        return _Credit(file, None, found[0].student_id)
    if not who or not NOTEBOOK.fullmatch(name):
        return _Credit(file, None)   # a file that is no notebook, of no roster student: nobody's
    if roster is None:
        return _Credit(file, None, who)
    return _Credit(file, None, who, unmatched=_no_match(roster, who, "a file name", found))


def _assign(credits: list[_Credit], known: list[str], assignment: str | None, layout: Layout) -> None:
    """Decide each file's assignment: `assignment` when given (the instructor's word), else the one its name names,
    else the download's one assignment (flagged), else none."""
    for credit in credits:
        named = assignment_named(credit.filename, known) or assignment_named(credit.file.parts[-1], known)
        if assignment is not None:
            credit.assignment = assignment
            if named and named != assignment:
                credit.flags.append(f"its name ({credit.filename}) names {named}, but it was graded as {assignment} "
                                    f"(--assignment)")
        else:
            credit.assignment = named
    if assignment is not None:
        return
    notebooks = {c.assignment for c in credits if c.assignment and c.file.data is not None}
    if len(notebooks) != 1:
        return
    (only,) = notebooks
    for credit in credits:
        if credit.assignment is None and credit.student is not None:
            credit.assignment = only
            if credit.file.data is not None:
                credit.flags.append(f"its name ({credit.filename}) names no assignment: graded as {only}, the one "
                                    f"assignment of {layout.value}")


# --- the class --------------------------------------------------------------------------------------------------
@dataclass
class Intake:
    """What SUBMISSIONS holds, ready to grade, and how it was read."""
    layout: Layout
    submissions: list[Submission]
    problems: list[Problem]
    roster: Roster | None = None
    origins: dict[tuple[str, str], LmsName] = field(default_factory=dict)   # (student, assignment) -> the LMS's name
    unmatched: list[str] = field(default_factory=list)   # files or folders credited to no roster student, and why
    absent: list[str] = field(default_factory=list)      # roster students of whom SUBMISSIONS holds nothing
    notes: list[str] = field(default_factory=list)       # how SUBMISSIONS was read

    @property
    def empty(self) -> bool:
        """Whether it yields no submission at all (a roster student's missing work is none)."""
        return not self.submissions and not any(p.assignment and p.cause not in (Cause.NO_SUBMISSION,
                                                                                  Cause.UNKNOWN_ASSIGNMENT)
                                                for p in self.problems)


def gather(submissions: str | os.PathLike[str], known: Iterable[str], skip: Iterable[str | os.PathLike[str]] = (),
           staging: str | os.PathLike[str] | None = None, roster: Roster | None = None,
           assignment: str | None = None) -> Intake:
    """Read SUBMISSIONS (a folder or a zip, in any layout above) into the submissions to grade and the problems
    (collect.py's records), matched to `roster`. `staging` is a scratch folder, kept while the class is graded (the
    notebooks of an LMS's download are copied there); `skip` are folders that are not students (OUT). Raises
    NothingToGrade when nothing at all was handed in, IntakeError when SUBMISSIONS cannot be read."""
    known = sorted(known)
    path = Path(submissions)
    staged = Path(staging) if staging is not None else None
    skip_ids = {FileId(i.st_dev, i.st_ino) for p in skip for i in [_stat(p)] if i is not None}
    notes: list[str] = []
    refused: list[Refused] = []
    if not path.is_dir():
        if staged is None:
            raise IntakeError(f"SUBMISSIONS {path} is not a folder")
        root = staged / "unpacked"
        refused = unpack(path, root)
        notes.append(f"unpacked {path.name} ({sum(1 for p in root.rglob('*') if p.is_file())} files)")
    else:
        root = path
    inner = unwrap(root, known, skip_ids)
    if inner != root:
        notes.append(f"read the class from {inner.relative_to(root)}/, the one folder of {path.name}")
        prefix = inner.relative_to(root).parts
        refused = [dataclasses.replace(r, parts=r.parts[len(prefix):]) if r.parts[:len(prefix)] == prefix else r
                   for r in refused]
        root = inner
    layout = detect(root, skip_ids)
    if layout is Layout.NBGRADER:
        if assignment is not None:
            raise IntakeError(f"--assignment names the assignment of an LMS's download; {path} is in nbgrader's layout, "
                              f"whose folders name each submission's assignment")
        intake = _gather_nbgrader(root, known, skip, refused, roster)
    else:
        if staged is None:
            raise IntakeError(f"{path} is {layout.value}: reading it needs a scratch folder")
        intake = _gather_download(root, layout, known, skip_ids, refused, roster, assignment, staged / "submitted")
    intake.notes[:0] = notes
    _apply_roster(intake, known)
    if intake.empty:
        raise NothingToGrade(_nothing(path, root, known, intake, skip_ids))
    return intake


def _stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _gather_nbgrader(root: Path, known: list[str], skip: Iterable[str | os.PathLike[str]], refused: list[Refused],
                     roster: Roster | None) -> Intake:
    found, problems = collect(root, known, skip)
    for r in refused:   # what the zip held and was not unpacked
        assignment = r.parts[1] if len(r.parts) > 2 and r.parts[1] in known else ""
        problems.append(Problem(r.parts[0], assignment, r.cause, f"{'/'.join(r.parts)}: {r.reason}"))
    for entry in _listing(root, set()):
        if entry.kind is not Kind.FOLDER and NOTEBOOK.fullmatch(entry.name):
            problems.append(Problem(entry.name, "", Cause.NOBODYS,
                                    "a notebook outside any student folder: not graded (it belongs in "
                                    "<student_id>/<assignment>/)"))
    intake = Intake(Layout.NBGRADER, found, problems, roster)
    if roster is not None:
        on_roster = set(roster.ids)
        strangers = sorted({s.student_id for s in found} - on_roster)
        intake.submissions = [s if s.student_id in on_roster else dataclasses.replace(
            s, flags=(f"the folder {s.student_id} is no student of the roster {roster.path}",) + s.flags) for s in found]
        intake.unmatched = [f"{s}/: no student of the roster has this id" for s in
                            sorted(set(strangers) | {p.student_id for p in problems if p.student_id not in on_roster
                                                     and p.cause not in (Cause.NOT_A_STUDENT, Cause.NOBODYS)})]
    return intake


def _gather_download(root: Path, layout: Layout, known: list[str], skip: set[FileId], refused: list[Refused],
                     roster: Roster | None, assignment: str | None, staging: Path) -> Intake:
    files = _files(root, skip, MAX_DEPTH if layout is Layout.MOODLE else 0)
    files += [_File(tuple(p for p in r.parts if p != ".."), refused=r) for r in refused]
    credits: list[_Credit] = []
    problems: list[Problem] = []
    unmatched: list[str] = []
    for file in sorted(files, key=lambda f: f.parts):
        credit = (_credit_moodle(file, roster) if layout is Layout.MOODLE else
                  _credit_canvas(file, roster) if len(file.parts) == 1 else None)
        if credit is None and layout is not Layout.MOODLE and len(file.parts) == 1:
            credit = _credit_plain(file, roster, known)
        if credit is None or credit.student is None:
            why = (f"not a file of {layout.value}: its name says no student" if credit is None or layout is not Layout.FILES
                   else "its name says no student")
            problems.append(Problem(file.shown, "", Cause.NOBODYS, why))
            unmatched.append(f"{file.shown}: {why}")
            continue
        credits.append(credit)
    _assign(credits, known, assignment, layout)
    by_submission: defaultdict[tuple[str, str], list[_Credit]] = defaultdict(list)
    for credit in credits:
        assert credit.student is not None
        if credit.unmatched:
            credit.flags.insert(0, f"credited to {credit.student}, the LMS's name for it: {credit.unmatched}")
            unmatched.append(f"{credit.file.shown}: {credit.unmatched}; credited to {credit.student}")
        if credit.assignment is None:
            problems.append(Problem(credit.student, "", Cause.UNKNOWN_ASSIGNMENT,
                                    f"{credit.file.shown}: cannot tell which assignment it is (its name names none of "
                                    f"{', '.join(known)}): name it with --assignment"))
            continue
        by_submission[(credit.student, credit.assignment)].append(credit)
    origins: dict[tuple[str, str, str], LmsName] = {}
    flags: dict[tuple[str, str], list[str]] = {}
    for (student, assignment_id), handed in sorted(by_submission.items()):
        problem = _stage(staging, student, assignment_id, handed, origins, flags)
        if problem is not None:
            problems.append(problem)
    found: list[Submission] = []
    if staging.is_dir():
        found, more = collect(staging, known)
        problems += more
    intake = Intake(layout, [], problems, roster, unmatched=unmatched)
    for submission in found:
        key = (submission.student_id, submission.assignment)
        intake.submissions.append(dataclasses.replace(submission, flags=tuple(flags.get(key, [])) + submission.flags))
        origin = origins.get(key + (submission.notebook.name,))
        if origin is not None:
            intake.origins[key] = origin
    return intake


def _stage(staging: Path, student: str, assignment: str, handed: list[_Credit],
           origins: dict[tuple[str, str, str], LmsName], flags: dict[tuple[str, str], list[str]]) -> Problem | None:
    """Copy the notebooks of one student and assignment into staging/<student>/<assignment>/; the problem when there
    is none to grade (what was handed in instead)."""
    notebooks = [c for c in handed if c.file.data is not None]
    others = [c for c in handed if c.file.data is None]
    said = [flag for c in handed for flag in c.flags]
    if not notebooks:
        link = next((c.file.refused for c in others if c.file.refused is not None), None)
        if link is not None:
            return Problem(student, assignment, link.cause, f"{link.reason} ({'/'.join(link.parts)})")
        names = ", ".join(_kind_of(c) for c in others)
        return Problem(student, assignment, Cause.NO_NOTEBOOK, f"no notebook: handed in {names}")
    folder = staging / student / assignment
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for credit in notebooks:
        name = _staged_name(folder, credit.filename)
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            assert credit.file.data is not None
            out.write(credit.file.data)
        if credit.name is not None:
            origins[(student, assignment, name)] = credit.name
    if others:
        said.append(f"also handed in {', '.join(_kind_of(c) for c in others)}: not graded")
    flags[(student, assignment)] = list(dict.fromkeys(said))
    return None


def _kind_of(credit: _Credit) -> str:
    if credit.file.refused is not None:
        return f"{credit.file.shown} ({credit.file.refused.reason})"
    if credit.name is not None and credit.name.kind in ("text", "link"):
        return f"{credit.file.shown} (a {'text entry' if credit.name.kind == 'text' else 'website URL'})"
    if credit.name is not None and credit.name.kind != "file":
        return f"{credit.file.shown} (Moodle's {credit.name.kind} submission)"
    return f"{credit.file.shown} (not a notebook)"


def _staged_name(folder: Path, filename: str) -> str:
    """A name for a student's notebook in its staged folder: theirs, ending in .ipynb, not hidden, not taken."""
    stem = re.sub(r"\.ipynb$", "", filename, flags=re.I).lstrip(".") or "notebook"
    stem = stem.encode("utf-8")[:200].decode("utf-8", "ignore")
    name, n = f"{stem}.ipynb", 1
    while (folder / name).exists():
        n += 1
        name = f"{stem} ({n}).ipynb"
    return name


def _apply_roster(intake: Intake, known: list[str]) -> None:
    """Every roster student appears for every assignment graded: one who handed in nothing of it scores 0."""
    if intake.roster is None:
        return
    graded = sorted({s.assignment for s in intake.submissions} | {p.assignment for p in intake.problems
                                                                    if p.assignment in known})
    present = {(s.student_id, s.assignment) for s in intake.submissions} | \
              {(p.student_id, p.assignment) for p in intake.problems}
    anything = {student for student, _ in present}
    for student in intake.roster.ids:
        if student not in anything:
            intake.absent.append(student)
        for assignment in graded:
            if (student, assignment) not in present:
                intake.problems.append(Problem(student, assignment, Cause.NO_SUBMISSION,
                                               "no submission: nothing of this roster student's was handed in"))


def _nothing(path: Path, root: Path, known: list[str], intake: Intake, skip: set[FileId]) -> str:
    entries = _listing(root, skip)
    shown = ", ".join(e.name + ("/" if e.kind is Kind.FOLDER else "") for e in entries[:6])
    held = f"it holds {len(entries)} entries: {shown}{', ...' if len(entries) > 6 else ''}" if entries else "it is empty"
    why = "".join(f"\n  {p.student_id}: {p.reason}" for p in intake.problems[:10] if p.cause is not Cause.NO_SUBMISSION)
    return (f"nothing to grade in {path} ({intake.layout.value}): no notebook of this course's assignments "
            f"({', '.join(known)}) was found, {held}.{why}\nExpected nbgrader's layout "
            f"<student_id>/<assignment>/<assignment>.ipynb, a Canvas download (files like "
            f"smithjohn_12345_67890_01_attention.ipynb), a Moodle download (folders like "
            f"'Jo Smith_4242_assignsubmission_file_'), or flat files like alice_01_attention.ipynb; a folder or a zip.")
