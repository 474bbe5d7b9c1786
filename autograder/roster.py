"""The class roster (`--roster roster.csv`): who the students are, and the names and numbers an LMS knows them by.

A roster is a CSV file with a header row (UTF-8, with or without the byte-order mark a spreadsheet writes):

    student_id     required: the student's id in every output (grades.csv, feedback/<student_id>/, OUT/lms/)
    name           the full name, "First Last" or "Last, First": Moodle's folders and Canvas's file names carry it
    email          the email address (Moodle's grade import can match students on it)
    canvas_id      Canvas's user id: the number in the names of Canvas's download, the "ID" column of its gradebook
    sis_user_id, sis_login_id, section    Canvas's gradebook columns, copied into OUT/lms/canvas-grades.csv
    idnumber       Moodle's "ID number" of the user (another identifier Moodle's grade import can match on)

Only student_id is required; every other column may be missing or empty. A column of another name is refused (a
misspelt column would silently match nobody). A download's file is credited to a roster student by the LMS's
user id (Canvas) or by the name it carries (Moodle's participant numbers change from one assignment to the next),
compared by letters and digits only, case folded, in any order of first and last names (`name_keys`).
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from autograder.collect import name_key

REQUIRED = ("student_id",)
OPTIONAL = ("name", "email", "canvas_id", "sis_user_id", "sis_login_id", "section", "idnumber")
COLUMNS = REQUIRED + OPTIONAL
MAX_ROSTER_BYTES = 16 * 2**20


class RosterError(ValueError):
    """A roster that cannot be used, with what to fix (the command line shows it and stops)."""


@dataclass(frozen=True)
class Student:
    """One row of the roster."""
    student_id: str
    name: str = ""
    email: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    idnumber: str = ""


def name_keys(name: str) -> frozenset[str]:
    """The keys under which a name may appear in an LMS's file names: its words in every rotation, so that
    "Jo Smith", "Smith, Jo" and "de la Cruz, Ana" ("Ana de la Cruz") meet Canvas's "smithjo" or "delacruzana" and
    Moodle's "Jo Smith" or "Smith Jo"; each key is `collect.name_key` of the words put together."""
    last, comma, first = name.partition(",")
    words = (first.split() + last.split()) if comma else name.split()
    words = [w for w in (name_key(w) for w in words) if w]
    return frozenset("".join(words[i:] + words[:i]) for i in range(len(words)))


def _valid_id(student_id: str) -> str | None:
    """Why a student id cannot name a folder of OUT (None when it can)."""
    if not student_id:
        return "it is empty"
    if student_id.startswith(".") or any(c in student_id for c in "/\\\0") or not student_id.isprintable():
        return "it must not start with a dot nor hold a slash, a backslash or a control character"
    if len(student_id.encode("utf-8")) > 200:
        return "it is longer than 200 bytes"
    return None


@dataclass(frozen=True)
class Roster:
    students: tuple[Student, ...]
    path: str = ""

    @functools.cached_property
    def _names(self) -> dict[str, tuple[Student, ...]]:
        """{name key: the students with that name}."""
        keys: defaultdict[str, list[Student]] = defaultdict(list)
        for student in self.students:
            for key in name_keys(student.name):
                keys[key].append(student)
        return {key: tuple(found) for key, found in keys.items()}

    @property
    def ids(self) -> list[str]:
        return [s.student_id for s in self.students]

    def get(self, student_id: str) -> Student | None:
        return next((s for s in self.students if s.student_id == student_id), None)

    def by_canvas_id(self, canvas_id: str) -> Student | None:
        return next((s for s in self.students if s.canvas_id and s.canvas_id == canvas_id), None)

    def by_name(self, who: str) -> tuple[Student, ...]:
        """The students whose name is `who` as an LMS wrote it (any order of the words; letters and digits only)."""
        return self._names.get(name_key(who), ())

    def by_id_or_name(self, who: str) -> tuple[Student, ...]:
        """The students whose id is `who` (case folded), else those whose name it is."""
        same = tuple(s for s in self.students if name_key(s.student_id) == name_key(who))
        return same or self.by_name(who)


def parse_roster(text: str, path: str = "") -> Roster:
    """The roster in the CSV text `text`; RosterError says what is wrong (a missing or unknown column, an empty or
    repeated student id, a Canvas id or email given twice)."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise RosterError("the roster is empty: it needs a header row naming its columns, student_id first")
    header = [cell.strip().lower() for cell in rows[0]]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise RosterError(f"unknown column{'s' * (len(unknown) > 1)} {', '.join(repr(u) for u in unknown)}: a "
                          f"roster's columns are {', '.join(COLUMNS)} (only student_id is required)")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise RosterError(f"no {' or '.join(missing)} column: a roster's columns are {', '.join(COLUMNS)}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise RosterError(f"the column {', '.join(repeated)} appears twice")
    students = []
    for line, row in enumerate(rows[1:], start=2):
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        why = _valid_id(values["student_id"])
        if why:
            raise RosterError(f"row {line}: the student_id {values['student_id']!r} cannot be used: {why}")
        if values.get("canvas_id") and not values["canvas_id"].isdigit():
            raise RosterError(f"row {line}: the canvas_id {values['canvas_id']!r} is not a number (Canvas's user id, "
                              f"the ID column of its gradebook export)")
        students.append(Student(**values))
    _no_twice(students, lambda s: s.student_id, "student_id")
    _no_twice(students, lambda s: s.canvas_id, "canvas_id")
    _no_twice(students, lambda s: s.email.casefold(), "email")
    return Roster(tuple(students), path)


def _no_twice(students: Iterable[Student], value: Callable[[Student], str], column: str) -> None:
    seen: dict[str, str] = {}
    for student in students:
        v = value(student)
        if v and v in seen:
            raise RosterError(f"the {column} {v!r} is given twice (students {seen[v]!r} and {student.student_id!r})")
        seen.setdefault(v, student.student_id)


def read_roster(path: str | Path) -> Roster:
    """The roster at `path`; RosterError when it cannot be read or used."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ROSTER_BYTES + 1)
    except OSError as error:
        raise RosterError(f"cannot read the roster {path}: {error.strerror}") from None
    if len(data) > MAX_ROSTER_BYTES:
        raise RosterError(f"the roster {path} is larger than {MAX_ROSTER_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RosterError(f"the roster {path} is not UTF-8 text (save it as \"CSV UTF-8\")") from None
    return parse_roster(text, str(path))
