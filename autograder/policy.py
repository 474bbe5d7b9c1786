"""The instructor's word beside the tests: deadlines with extensions and a late penalty, and overrides of a test
cell's points, applied to a class's results after every grading (pipeline.py), to fresh and cached results alike.

OUT/results/ holds what the tests gave, never an adjustment: every run applies the instructor's files as they are
then, so that changing them changes what is written, and a regrade never loses them. The instructor's files, each
optional (README, "Deadlines, extensions and overrides"):

    --policy policy.yml        timezone, deadlines, the penalty rule, extensions (per student, with a reason)
    --times times.csv          student_id,assignment,submitted_at, or Moodle's grading worksheet of one assignment
                               (read_moodle_worksheet); without a row there, the time is the one nbgrader wrote
                               in submitted/<student>/<assignment>/timestamp.txt
    --overrides overrides.csv  student_id,assignment,grade_id,points,reason

They are read and checked before anything is graded (`load_rules`; a PolicyError names the file, the line or key,
and what to write). What only the graded class can tell, an override of a student, assignment or cell that is not
there, is an OverrideOutcome that the report lists: never dropped. A submission whose time is not known is not
penalised, and flagged.

Times are compared as instants, never as wall-clock times: a deadline on the night the clocks change is as late
as its zone says, and a day late is 24 hours of real time. A wall-clock time that does not exist in its zone (the
hour skipped when the clocks go forward) or that happens twice (when they go back) is refused unless it carries its
offset. YAML is read as text only (yaml.BaseLoader): a student id such as 012345 stays a string, never an octal
number, and no time is converted behind our back.
"""
from __future__ import annotations

import csv
import dataclasses
import errno
import math
import os
import re
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autograder.editions import Edition, say
from autograder.model import Status, SubmissionResult

if TYPE_CHECKING:
    from autograder.collect import Submission
    from autograder.model import ClassResults
    from autograder.roster import Roster

Key = tuple[str, str]     # (student_id, assignment)
EVERY_ASSIGNMENT = "*"    # an extension's assignment: all of them
TIMESTAMP = "timestamp.txt"   # what nbgrader's exchange writes beside a submitted notebook
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


class PolicyError(ValueError):
    """An instructor's file that cannot be used: the message names the file, the line or key, and what to write."""


# --- times --------------------------------------------------------------------------------------------------------


def localize(wall: datetime, zone: tzinfo, strict: bool = True) -> datetime:
    """A wall-clock time in `zone`. Strict: a time that does not exist there (the clocks go forward) or happens
    twice (they go back) is a ValueError; otherwise the first real instant at or after it."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    real = first.astimezone(timezone.utc).astimezone(zone)
    if real.replace(tzinfo=None) != wall:
        if strict:
            raise ValueError(f"{wall:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks go forward then; "
                             f"write another time, or its offset (e.g. {first:%Y-%m-%d %H:%M%z})")
        return real
    if strict and first.utcoffset() != second.utcoffset():
        raise ValueError(f"{wall:%Y-%m-%d %H:%M} happens twice in {zone}: the clocks go back then; write its "
                         f"offset ({first:%H:%M%z} or {second:%H:%M%z})")
    return first


def zone_named(name: str) -> tzinfo:
    """A time zone from its IANA name (Europe/Berlin), UTC, or a fixed offset (+01:00)."""
    if name.upper() in ("UTC", "GMT", "Z"):
        return timezone.utc
    offset = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name)
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not a time zone (write one such as Europe/Berlin, UTC or +01:00)") from None


def parse_time(text: str, zone: tzinfo | None) -> datetime:
    """An instant from text: ISO 8601 with an offset (2027-01-15T23:59:00+01:00), or a date and time followed by a
    zone (Europe/Berlin, UTC, +01:00, or an abbreviation of `zone`'s such as CEST: nbgrader's timestamp.txt), or a
    date and time alone, in `zone`. A ValueError says what is wrong."""
    text = " ".join(str(text).split())
    try:
        moment, name = datetime.fromisoformat(text), ""
    except ValueError:
        head, _, name = text.rpartition(" ")
        try:
            moment = datetime.fromisoformat(head)
        except ValueError:
            raise ValueError(f"{text!r} is not a date and time (write e.g. 2027-01-15 23:59, or "
                             f"2027-01-15 23:59 Europe/Berlin)") from None
        if moment.tzinfo is not None:
            raise ValueError(f"{text!r} has two time zones")
    if not re.search(r"\d:\d\d", text):
        raise ValueError(f"{text!r} has no time of day (write e.g. {text} 23:59: a date alone would mean midnight, "
                         f"at its start)")
    if moment.tzinfo is not None:
        return moment
    if name:
        if zone is not None:   # an abbreviation of the course's zone (CET, CEST), as nbgrader's timestamps carry
            for fold in (0, 1):
                candidate = moment.replace(tzinfo=zone, fold=fold)
                if candidate.tzname() == name and \
                        candidate.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == moment:
                    return candidate
        return localize(moment, zone_named(name))
    if zone is None:
        raise ValueError(f"{text!r} has no time zone, and the policy gives none (write e.g. {text} Europe/Berlin, "
                         f"or set `timezone` in the policy)")
    return localize(moment, zone)


def shown(moment: datetime, zone: tzinfo | None = None) -> str:
    """An instant for a person: 2027-01-15 23:59:00 CET (in `zone`, else its own)."""
    return (moment.astimezone(zone) if zone is not None else moment).strftime(TIME_FORMAT)


def iso(moment: datetime, zone: tzinfo | None = None) -> str:
    """An instant for a CSV file: 2027-01-15T23:59:00+01:00."""
    return (moment.astimezone(zone) if zone is not None else moment).isoformat(timespec="seconds")


def instant_difference(later: datetime, earlier: datetime) -> timedelta:
    """Real time between two instants. (Python subtracts two times of one ZoneInfo as wall-clock times: across a
    change of the clocks that is an hour off.)"""
    return later.astimezone(timezone.utc) - earlier.astimezone(timezone.utc)


def duration(span: timedelta, edition: Edition = Edition.EN) -> str:
    """A span for a person, in started minutes: 1 d 2 h 5 min."""
    minutes = math.ceil(span.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return say(edition, "{days} d {hours} h {minutes} min", days=days, hours=hours, minutes=minutes)
    if hours:
        return say(edition, "{hours} h {minutes} min", hours=hours, minutes=minutes)
    return say(edition, "{minutes} min", minutes=minutes)


# --- the policy ---------------------------------------------------------------------------------------------------


class Unit(Enum):
    """What a penalty counts: started days or started hours of real time after the deadline."""
    DAY = "day"
    HOUR = "hour"

    @property
    def length(self) -> timedelta:
        return timedelta(days=1) if self is Unit.DAY else timedelta(hours=1)


class Base(Enum):
    """What a penalty's share is taken of."""
    SCORE = "score"            # of what the submission earned (with the overrides)
    MAX_SCORE = "max_score"    # of the assignment's points, never below 0


@dataclass(frozen=True)
class Penalty:
    """The late penalty: `rate` of the score per started `per` after the deadline, at most `cap` in all; a
    submission at most `grace` after its deadline is on time (later ones count from the deadline itself)."""
    rate: float = 0.0
    per: Unit = Unit.DAY
    cap: float = 1.0
    grace: timedelta = timedelta(0)
    of: Base = Base.SCORE

    def units(self, late_by: timedelta) -> int:
        """Started units late (0 on time or within the grace)."""
        if late_by <= max(self.grace, timedelta(0)):
            return 0
        return -(-late_by // self.per.length)

    def share(self, late_by: timedelta) -> float:
        """The share of the score lost."""
        return round(min(self.cap, self.rate * self.units(late_by)), 6)

    def points(self, late_by: timedelta, score: float, max_score: float) -> float:
        """The points deducted from `score`: never more than it."""
        base = score if self.of is Base.SCORE else max_score
        return round(min(score, self.share(late_by) * base), 2)

    def describe(self, edition: Edition = Edition.EN) -> str:
        rate, cap = f"{self.rate * 100:g}", f"{self.cap * 100:g}"
        text = say(edition, "{rate}% per started day late, at most {cap}%" if self.per is Unit.DAY else
                   "{rate}% per started hour late, at most {cap}%", rate=rate, cap=cap)
        if self.grace:
            text += say(edition, ", after a grace of {grace}", grace=duration(self.grace, edition))
        return text


@dataclass(frozen=True)
class Extension:
    """A student's later deadline for one assignment (or every one: "*"), with its reason: a new deadline
    (`until`), or calendar days (the same time of day in the deadline's zone) and hours of real time added."""
    student_id: str
    assignment: str
    reason: str
    until: datetime | None = None
    days: int = 0
    hours: float = 0.0
    where: str = ""    # the entry of the policy file, for messages: "extensions[2]"

    def deadline(self, course: datetime) -> datetime:
        if self.until is not None:
            return self.until
        zone = course.tzinfo or timezone.utc
        moved = localize(course.replace(tzinfo=None) + timedelta(days=self.days), zone, strict=False)
        return (moved.astimezone(timezone.utc) + timedelta(hours=self.hours)).astimezone(zone)

    def describe(self, edition: Edition = Edition.EN) -> str:
        """The extension for a person: "until 2027-04-20 12:00:00 CEST", "2 d", "1 d + 12 h"."""
        if self.until is not None:
            return say(edition, "until {deadline}", deadline=shown(self.until))
        parts = ([say(edition, "{days} d", days=self.days)] if self.days else []) + \
            ([say(edition, "{hours} h", hours=f"{self.hours:g}")] if self.hours else [])
        return " + ".join(parts)


@dataclass(frozen=True)
class Override:
    """An instructor's points for one test cell of one submission (a line of overrides.csv)."""
    student_id: str
    assignment: str
    grade_id: str
    points: float
    reason: str
    line: int


@dataclass(frozen=True)
class SubmittedAt:
    """When a submission was handed in, and where that was read; `when` None: not known, and why (`problem`)."""
    when: datetime | None
    source: str = ""
    problem: str = ""


@dataclass(frozen=True)
class SheetRow:
    """A row of Moodle's grading worksheet that gives a submission time, and whose it may be: the (student,
    assignment) keys it is filed under, or why it is credited to no student (`problem`)."""
    line: int
    source: str              # "worksheet.csv line 5"
    who: str                 # as Moodle names the student: "Jo Smith_4242" (full name, participant number)
    assignment: str
    keys: tuple[Key, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class Rules:
    """Everything the instructor decided beside the tests (load_rules reads it from their files)."""
    zone: tzinfo | None = None                                   # of times written without one
    deadlines: Mapping[str, datetime] = field(default_factory=dict)   # assignment -> its deadline
    penalty: Penalty = Penalty()
    extensions: tuple[Extension, ...] = ()
    overrides: tuple[Override, ...] = ()
    times: Mapping[Key, SubmittedAt] = field(default_factory=dict)    # from --times
    sheet: tuple[SheetRow, ...] = ()    # the rows of a Moodle worksheet given as --times, matched or not

    def extension(self, student_id: str, assignment: str) -> Extension | None:
        """The student's extension of this assignment (one for it beats one for every assignment)."""
        mine = [e for e in self.extensions if e.student_id == student_id and e.assignment in (assignment, EVERY_ASSIGNMENT)]
        return min(mine, key=lambda e: e.assignment == EVERY_ASSIGNMENT, default=None)

    def deadline(self, student_id: str, assignment: str) -> tuple[datetime | None, Extension | None]:
        """(the student's deadline of the assignment, the extension that made it), or (None, None): none."""
        course = self.deadlines.get(assignment)
        if course is None:
            return None, None
        extension = self.extension(student_id, assignment)
        return (extension.deadline(course) if extension else course), extension


# --- reading the instructor's files -------------------------------------------------------------------------------

POLICY_KEYS = ("timezone", "deadlines", "penalty", "extensions")
PENALTY_KEYS = ("rate", "per", "cap", "grace_minutes", "of")
EXTENSION_KEYS = ("student", "assignment", "until", "days", "hours", "reason")
TIMES_COLUMNS = ("student_id", "assignment", "submitted_at")
OVERRIDE_COLUMNS = ("student_id", "assignment", "grade_id", "points", "reason")


def _share(text: object, where: str) -> float:
    """A share between 0 and 1, written 0.1 or 10%."""
    value = str(text).strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not a share (write 0.1 or 10%)") from None
    if not 0 <= number <= 1:
        raise PolicyError(f"{where}: {value!r} is not between 0 and 1 (0% and 100%)")
    return number


def _number(text: object, where: str, integer: bool = False) -> float:
    """A finite number, at least 0."""
    try:
        number = float(str(text).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (integer and number != int(number)):
        kind = "a whole number" if integer else "a number"
        raise PolicyError(f"{where}: {str(text)!r} is not {kind} of at least 0")
    return number


def _mapping(value: object, where: str, keys: Collection[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected keys ({', '.join(keys)}), found {type(value).__name__}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where}: expected a text, found {value!r}")
    return value.strip()


def read_policy(path: str | os.PathLike[str], assignments: Collection[str]) -> Rules:
    """The policy file: its time zone, deadlines, penalty rule and extensions (no overrides, no times)."""
    import yaml
    name = Path(path).name
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=yaml.BaseLoader)
    except OSError as error:
        raise PolicyError(f"{path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}: not YAML: {error}") from None
    policy = _mapping({} if document in (None, "") else document, name, POLICY_KEYS)
    zone = None
    if "timezone" in policy:
        try:
            zone = zone_named(_text(policy["timezone"], f"{name}: timezone"))
        except ValueError as error:
            raise PolicyError(f"{name}: timezone: {error}") from None

    def known(assignment: str, where: str, every: bool = False) -> str:
        if assignment not in assignments and not (every and assignment == EVERY_ASSIGNMENT):
            raise PolicyError(f"{where}: no assignment {assignment!r} in this course (it has: {', '.join(sorted(assignments))}"
                              + (", or * for every one)" if every else ")"))
        return assignment

    def moment(text: object, where: str) -> datetime:
        try:
            return parse_time(_text(text, where), zone)
        except ValueError as error:
            raise PolicyError(f"{where}: {error}") from None

    given_deadlines = policy.get("deadlines") or {}
    if not isinstance(given_deadlines, dict):
        raise PolicyError(f"{name}: deadlines: expected one line per assignment (01_attention: 2027-01-15 23:59)")
    deadlines = {known(a, f"{name}: deadlines"): moment(t, f"{name}: deadlines: {a}") for a, t in given_deadlines.items()}
    penalty = Penalty()
    if policy.get("penalty"):
        given = _mapping(policy["penalty"], f"{name}: penalty", PENALTY_KEYS)
        where = f"{name}: penalty"
        try:
            per = Unit(str(given.get("per", "day")).strip())
            of = Base(str(given.get("of", "score")).strip())
        except ValueError:
            raise PolicyError(f"{where}: `per` is day or hour, and `of` is score or max_score") from None
        penalty = Penalty(rate=_share(given.get("rate", 0), f"{where}: rate"), per=per,
                          cap=_share(given.get("cap", 1), f"{where}: cap"),
                          grace=timedelta(minutes=_number(given.get("grace_minutes", 0), f"{where}: grace_minutes")),
                          of=of)
    extensions: list[Extension] = []
    entries = policy.get("extensions") or []
    if not isinstance(entries, list):
        raise PolicyError(f"{name}: extensions: expected a list of entries (- student: ..., assignment: ...)")
    seen: dict[Key, str] = {}
    for n, entry in enumerate(entries, start=1):
        where = f"{name}: extensions, entry {n}"
        given = _mapping(entry, where, EXTENSION_KEYS)
        for key in ("student", "assignment", "reason"):
            if key not in given:
                raise PolicyError(f"{where}: `{key}` is missing (an extension names its student, its assignment or *, "
                                  f"and its reason)")
        student, assignment = _text(given["student"], f"{where}: student"), _text(given["assignment"], f"{where}: assignment")
        known(assignment, f"{where}: assignment", every=True)
        if (student, assignment) in seen:
            raise PolicyError(f"{where}: {student} has an extension of {assignment} already ({seen[(student, assignment)]})")
        seen[(student, assignment)] = f"entry {n}"
        has_until, has_more = "until" in given, "days" in given or "hours" in given
        if has_until == has_more:
            raise PolicyError(f"{where}: give either `until` (a new deadline) or `days` and/or `hours` (added to it)")
        if has_until and assignment == EVERY_ASSIGNMENT:
            raise PolicyError(f"{where}: `until` needs one assignment; for every one give `days` or `hours`")
        extensions.append(Extension(
            student, assignment, _text(given["reason"], f"{where}: reason"),
            until=moment(given["until"], f"{where}: until") if has_until else None,
            days=int(_number(given.get("days", 0), f"{where}: days", integer=True)),
            hours=_number(given.get("hours", 0), f"{where}: hours"), where=f"entry {n}"))
    return Rules(zone=zone, deadlines=deadlines, penalty=penalty, extensions=tuple(extensions))


def _csv_rows(path: str | os.PathLike[str], columns: Collection[str]) -> list[tuple[int, dict[str, str]]]:
    """(line, {column: text}) of each row of a CSV file with (at least) these columns; blank rows left out."""
    name = Path(path).name
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise PolicyError(f"{name}: the first line must name the columns {','.join(columns)} "
                                  f"({', '.join(missing)} missing)")
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                record = dict(zip(header, row))
                if len(row) < len(header) or any(record.get(c) is None for c in columns):
                    raise PolicyError(f"{name}, line {reader.line_num}: {len(row)} fields, expected {len(header)}")
                rows.append((reader.line_num, {c: record[c].strip() for c in columns}))
            return rows
    except OSError as error:
        raise PolicyError(f"{path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text") from None
    except csv.Error as error:
        raise PolicyError(f"{path}: not a CSV file: {error}") from None


def read_times(path: str | os.PathLike[str], zone: tzinfo | None) -> dict[Key, SubmittedAt]:
    """times.csv: {(student, assignment): when it was handed in}."""
    name, times = Path(path).name, dict[Key, SubmittedAt]()
    for line, row in _csv_rows(path, TIMES_COLUMNS):
        key = (row["student_id"], row["assignment"])
        if key in times:
            raise PolicyError(f"{name}, line {line}: {key[0]} and {key[1]} are given already ({times[key].source})")
        try:
            when = parse_time(row["submitted_at"], zone)
        except ValueError as error:
            raise PolicyError(f"{name}, line {line}: {error}") from None
        times[key] = SubmittedAt(when, f"{name} line {line}")
    return times


MOODLE_COLUMNS = ("Identifier", "Full name", "Last modified (submission)")   # and "Email address" where the site shows it
MOODLE_EMAIL = "Email address"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
MOODLE_TIME = re.compile(r"(?:[A-Za-z]+,\s*)?(\d{1,2})\s+([A-Za-z]+)\s+(\d{4}),\s*(\d{1,2}):(\d\d)\s*([AP]M)",
                         flags=re.IGNORECASE)


def _header(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV file's first line ([] when it cannot be read: reading its rows then says why)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def is_moodle_worksheet(path: str | os.PathLike[str]) -> bool:
    """Whether the file's first line is the header of Moodle's grading worksheet."""
    header = _header(path)
    return all(column in header for column in MOODLE_COLUMNS)


def moodle_time(text: str) -> datetime | None:
    """The wall-clock time Moodle writes on an English site ("Monday, 7 December 2026, 10:30 PM"), or None."""
    match = MOODLE_TIME.fullmatch(" ".join(text.split()))
    if match is None or match.group(2).lower() not in MONTHS or not 1 <= int(match.group(4)) <= 12:
        return None
    day, month, year = int(match.group(1)), MONTHS.index(match.group(2).lower()) + 1, int(match.group(3))
    hour = int(match.group(4)) % 12 + (12 if match.group(6).upper() == "PM" else 0)
    try:
        return datetime(year, month, day, hour, int(match.group(5)))
    except ValueError:
        return None


def _moodle_submitted(wall: datetime, zone: tzinfo, source: str) -> SubmittedAt:
    """A worksheet's time in the policy's zone. It carries no offset: in the hour that happens twice (the clocks go
    back) the earlier instant is taken, in the student's favour; a time that does not exist there is not known."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != wall:
        return SubmittedAt(None, source, f"{source}: {wall:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks go "
                                         f"forward then): is the policy's timezone the one of the Moodle account "
                                         f"that downloaded the worksheet?")
    if first.utcoffset() != second.utcoffset():
        earlier = min(first, second, key=lambda moment: moment.astimezone(timezone.utc))
        return SubmittedAt(earlier, f"{source} ({wall:%H:%M} happens twice in {zone}: the earlier taken)")
    return SubmittedAt(first, source)


def read_moodle_worksheet(path: str | os.PathLike[str], zone: tzinfo | None, assignment: str,
                          roster: Roster | None = None) -> tuple[dict[Key, SubmittedAt], tuple[SheetRow, ...]]:
    """Moodle's grading worksheet of `assignment` ("Download grading worksheet"): each row's "Last modified
    (submission)" ("-": nothing handed in, no row of times), read in the policy's zone. A row is the roster student
    with its email, else with its full name; without a roster it is filed under its email, its full name and
    "<full name>_<participant number>" (how a Moodle download without a roster names the student). Rows credited
    to no student are kept in the SheetRows with why, for the report, never an error."""
    name = Path(path).name
    if zone is None:
        raise PolicyError(f"{name}: Moodle's grading worksheet writes its times without a time zone: set `timezone` "
                          f"in the policy (--policy), the zone of the Moodle account that downloaded it")
    times: dict[Key, SubmittedAt] = {}
    rows: list[SheetRow] = []
    shared: set[Key] = set()   # keys of two rows (two students of one name, without a roster): neither's
    columns = MOODLE_COLUMNS + ((MOODLE_EMAIL,) if MOODLE_EMAIL in _header(path) else ())
    for line, row in _csv_rows(path, columns):
        text, full_name, email = row["Last modified (submission)"], row["Full name"], row.get(MOODLE_EMAIL, "")
        if text in ("", "-"):
            continue
        wall = moodle_time(text)
        if wall is None:
            raise PolicyError(f"{name}, line {line}: {text!r} is not a time as Moodle writes it on an English site "
                              f"(\"Monday, 7 December 2026, 10:30 PM\"): download the worksheet with English as your "
                              f"Moodle language, or give the times as times.csv (student_id,assignment,submitted_at)")
        number = "".join(c for c in row["Identifier"] if c.isdigit())
        who = f"{full_name}_{number}" if number else full_name
        source = f"{name} line {line}"
        if roster is not None:
            by_email = [s for s in roster.students if email and s.email.casefold() == email.casefold()]
            found = by_email or list(roster.by_name(full_name))
            taken = [r for r in rows if len(found) == 1 and (found[0].student_id, assignment) in r.keys]
            if len(found) != 1 or taken:
                why = (f"{full_name!r} is the name of several students of the roster "
                       f"({', '.join(s.student_id for s in found)})" if len(found) > 1 else
                       f"{found[0].student_id}'s time is given already (line {taken[0].line})" if taken else
                       f"{full_name!r} ({email or 'no email'}, {row['Identifier']}) matches no student of the roster")
                rows.append(SheetRow(line, source, who, assignment, problem=why))
                continue
            keys: tuple[Key, ...] = ((found[0].student_id, assignment),)
        else:
            keys = tuple(dict.fromkeys((k, assignment) for k in (email, full_name, who) if k))
        submitted = _moodle_submitted(wall, zone, source)
        for key in keys:
            if key in times:
                shared.add(key)
            times[key] = submitted
        rows.append(SheetRow(line, source, who, assignment, keys))
    for key in shared:
        del times[key]
    return times, tuple(dataclasses.replace(r, keys=tuple(k for k in r.keys if k not in shared))
                        for r in rows)


def read_overrides(path: str | os.PathLike[str]) -> tuple[Override, ...]:
    """overrides.csv, in its order (a later line for the same cell replaces an earlier one)."""
    name, found = Path(path).name, []
    for line, row in _csv_rows(path, OVERRIDE_COLUMNS):
        where = f"{name}, line {line}"
        for column in ("student_id", "assignment", "grade_id"):
            if not row[column]:
                raise PolicyError(f"{where}: no {column}")
        if not row["reason"]:
            raise PolicyError(f"{where}: no reason (the student reads it on their feedback page)")
        found.append(Override(row["student_id"], row["assignment"], row["grade_id"],
                              _number(row["points"], f"{where}: points"), row["reason"], line))
    return tuple(found)


def load_rules(policy: str | os.PathLike[str] | None, times: str | os.PathLike[str] | None,
               overrides: str | os.PathLike[str] | None, assignments: Collection[str],
               roster: Roster | None = None, assignment: str | None = None) -> Rules:
    """The instructor's files, checked before anything is graded; raises PolicyError. `times` is times.csv or
    Moodle's grading worksheet, which names no assignment: it is `assignment` (--assignment), or the course's one."""
    rules = read_policy(policy, assignments) if policy is not None else Rules()
    submitted: Mapping[Key, SubmittedAt] = {}
    sheet: tuple[SheetRow, ...] = ()
    if times is not None and is_moodle_worksheet(times):
        if assignment is None and len(assignments) != 1:
            raise PolicyError(f"{Path(times).name}: Moodle's grading worksheet does not say its assignment: give "
                              f"--assignment ID (this course has {', '.join(sorted(assignments))})")
        submitted, sheet = read_moodle_worksheet(times, rules.zone, assignment or next(iter(assignments)), roster)
    elif times is not None:
        submitted = read_times(times, rules.zone)
    return Rules(zone=rules.zone, deadlines=rules.deadlines, penalty=rules.penalty, extensions=rules.extensions,
                 overrides=read_overrides(overrides) if overrides is not None else (), times=submitted, sheet=sheet)


def readable_by_others(path: str | os.PathLike[str]) -> str | None:
    """A warning when a file of the class (overrides, extensions' reasons, a roster) can be read by other users."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return (f"{path} can be read by other users of this machine (mode {mode:o}): it holds the class's data; "
                f"chmod 600 {path}")
    return None


# --- submission times -----------------------------------------------------------------------------------------------


def read_timestamp(folder: str | os.PathLike[str], zone: tzinfo | None) -> SubmittedAt:
    """The time nbgrader's exchange wrote beside a submitted notebook (timestamp.txt: "2027-01-15 23:59:00.123456
    UTC"), read without following a link; its absence or a text that is no time is a `problem`."""
    path = Path(folder) / TIMESTAMP
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return SubmittedAt(None, problem=f"no {TIMESTAMP} beside the notebook, and no row in --times")
    except OSError as error:
        why = "a link, which is never followed" if error.errno == errno.ELOOP else f"unreadable ({error.strerror})"
        return SubmittedAt(None, problem=f"{TIMESTAMP} is {why}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return SubmittedAt(None, problem=f"{TIMESTAMP} is not a regular file")
        data = os.read(fd, 200)
    except OSError as error:
        return SubmittedAt(None, problem=f"{TIMESTAMP} is unreadable ({error.strerror})")
    finally:
        os.close(fd)
    try:
        return SubmittedAt(parse_time(data.decode("utf-8"), zone), TIMESTAMP)
    except (UnicodeDecodeError, ValueError) as error:
        return SubmittedAt(None, problem=f"{TIMESTAMP} holds no time this grader can read: {error}"[:300])


def submission_times(found: Iterable[Submission], rules: Rules) -> dict[Key, SubmittedAt]:
    """When each collected submission was handed in: its row of --times, else its timestamp.txt."""
    return {(s.student_id, s.assignment): rules.times.get((s.student_id, s.assignment))
            or read_timestamp(Path(s.notebook).parent, rules.zone) for s in found}


# --- applying them to a class -----------------------------------------------------------------------------------------


class Applied(Enum):
    """What became of one override."""
    APPLIED = "applied"
    NO_ASSIGNMENT = "no such assignment"
    NO_STUDENT = "no such student"
    NO_SUBMISSION = "no such submission"
    NO_CELL = "no such cell"
    OUT_OF_RANGE = "points out of range"
    NOT_GRADED = "not graded"
    REPLACED = "replaced"


@dataclass(frozen=True)
class OverrideOutcome:
    override: Override
    applied: Applied
    detail: str = ""               # why it was not applied, for a person
    tests: float | None = None     # the cell's points from the tests (when applied)
    max_score: float | None = None


class Timing(Enum):
    """A submission against its deadline."""
    NO_DEADLINE = "no deadline"
    ON_TIME = "on time"
    LATE = "late"
    TIME_UNKNOWN = "time unknown"   # a deadline, but no known time: not penalised, flagged
    NO_NOTEBOOK = "no notebook"     # nothing was handed in (or nothing readable): no time applies


@dataclass(frozen=True)
class Adjustment:
    """One submission with the instructor's word applied: its overrides, then its late penalty."""
    student_id: str
    assignment: str
    max_score: float
    tests_score: float | None      # what the tests gave (None: not graded)
    raw_score: float | None        # with the overrides
    penalty_points: float | None   # deducted for lateness
    final_score: float | None      # what counts: raw_score - penalty_points
    overrides: tuple[OverrideOutcome, ...] = ()   # those applied to this submission
    timing: Timing = Timing.NO_DEADLINE
    deadline: datetime | None = None           # the student's (with the extension)
    course_deadline: datetime | None = None
    extension: Extension | None = None
    submitted: SubmittedAt | None = None
    late_by: timedelta = timedelta(0)          # after the student's deadline (negative: before it)
    share: float = 0.0                         # of the score lost
    rule: Penalty = Penalty()

    @property
    def changed(self) -> bool:
        """Whether the student's score or deadline differs from what the tests and the course's deadline give."""
        return bool(self.overrides or self.extension or self.penalty_points)

    @property
    def zone(self) -> tzinfo | None:
        return self.deadline.tzinfo if self.deadline is not None else None

    def notes(self) -> str:
        """The instructor's changes and the lateness, in a line of grades.csv."""
        parts = [f"override {o.override.grade_id}: {o.override.points:g} / {o.max_score:g} (the tests gave "
                 f"{o.tests:g}): {o.override.reason}" for o in self.overrides if o.tests is not None and o.max_score is not None]
        if self.extension is not None and self.deadline is not None:
            parts.append(f"extension ({self.extension.describe()}) to {shown(self.deadline)}: {self.extension.reason}")
        if self.timing is Timing.LATE:
            parts.append(f"late by {duration(self.late_by)}: {self.share * 100:g}% ({self.rule.describe()})"
                         + (f", -{self.penalty_points:g} points" if self.penalty_points is not None else ""))
        elif self.timing is Timing.ON_TIME and self.late_by > timedelta(0):
            parts.append(f"{duration(self.late_by)} after the deadline, within the grace period: not late")
        elif self.timing is Timing.TIME_UNKNOWN and self.submitted is not None:
            parts.append(f"submission time unknown, not penalised: {self.submitted.problem}")
        return "; ".join(parts)

    def changes(self, edition: Edition) -> list[str]:
        """The instructor's changes, each a sentence for the student (their feedback page)."""
        lines = [say(edition, "Test cell {cell}: {points} / {top} points, set by your instructor (the tests gave "
                              "{tests}). Reason: {reason}", cell=o.override.grade_id, points=f"{o.override.points:g}",
                     top=f"{o.max_score:g}", tests=f"{o.tests:g}", reason=o.override.reason)
                 for o in self.overrides if o.tests is not None and o.max_score is not None]
        if self.extension is not None and self.deadline is not None and self.course_deadline is not None:
            lines.append(say(edition, "Your deadline was extended to {deadline} (the course's: {course}). Reason: {reason}",
                             deadline=shown(self.deadline), course=shown(self.course_deadline, self.zone),
                             reason=self.extension.reason))
        if self.timing is Timing.LATE and self.submitted is not None and self.submitted.when is not None \
                and self.deadline is not None and self.penalty_points is not None:
            values = dict(submitted=shown(self.submitted.when, self.zone), late=duration(self.late_by, edition),
                          deadline=shown(self.deadline), points=f"{self.penalty_points:g}", share=f"{self.share * 100:g}",
                          rule=self.rule.describe(edition))
            lines.append(say(edition, "Handed in {submitted}, {late} after your deadline ({deadline}): -{points} points, "
                                      "{share}% of your score ({rule})." if self.rule.of is Base.SCORE else
                             "Handed in {submitted}, {late} after your deadline ({deadline}): -{points} points, "
                             "{share}% of the assignment's points ({rule}).", **values))
        return lines


@dataclass
class ClassAdjustments:
    """The instructor's word on a class: each submission's Adjustment, and what became of every override and
    extension (those that found nothing to apply to are listed, never dropped)."""
    submissions: dict[Key, Adjustment] = field(default_factory=dict)
    overrides: list[OverrideOutcome] = field(default_factory=list)   # every line of overrides.csv, in order
    unused_extensions: list[Extension] = field(default_factory=list)
    rules: Rules = Rules()

    def unmatched_times(self) -> list[tuple[str, str, str]]:
        """(Moodle's name for the student, assignment, why) of each row of a Moodle worksheet with a time that
        went to no submission of this class: no roster student, or none that was handed in."""
        return [(row.who, row.assignment, f"{row.source}: " + (row.problem or "a submission time, but no "
                                                                "submission of this class is this student's"))
                for row in self.rules.sheet if row.problem or not any(key in self.submissions for key in row.keys)]

    def flags(self) -> list[tuple[str, str, str]]:
        """(student, assignment, reason) for flags.csv: submissions of unknown time, overrides not applied, rows of
        a Moodle worksheet credited to no submission."""
        found = self.unmatched_times() + [(a.student_id, a.assignment, f"submission time unknown, not penalised: {a.submitted.problem}")
                 for a in self.submissions.values() if a.timing is Timing.TIME_UNKNOWN and a.submitted is not None]
        found += [(o.override.student_id, o.override.assignment,
                   f"override not applied (overrides.csv line {o.override.line}, cell {o.override.grade_id}): {o.detail}")
                  for o in self.overrides if o.applied is not Applied.APPLIED]
        return found


def _outcome(override: Override, results: Mapping[Key, SubmissionResult], cells: Mapping[str, list[tuple[str, float]]],
             students: Collection[str], last: Mapping[tuple[str, str, str], int]) -> OverrideOutcome:
    """Whether an override applies, and to what."""
    o = override
    if last[(o.student_id, o.assignment, o.grade_id)] != o.line:
        return OverrideOutcome(o, Applied.REPLACED, f"replaced by line {last[(o.student_id, o.assignment, o.grade_id)]}")
    if o.assignment not in cells:
        return OverrideOutcome(o, Applied.NO_ASSIGNMENT, f"no assignment {o.assignment!r} was graded in this run "
                                                         f"(graded: {', '.join(sorted(cells)) or 'none'})")
    if o.student_id not in students:
        return OverrideOutcome(o, Applied.NO_STUDENT, f"no student {o.student_id!r} in this class")
    result = results.get((o.student_id, o.assignment))
    if result is None:
        return OverrideOutcome(o, Applied.NO_SUBMISSION, f"{o.student_id} has no submission of {o.assignment} in this run")
    if result.status is Status.NOT_GRADED:
        return OverrideOutcome(o, Applied.NOT_GRADED, "the submission was not graded in this run (the grader failed): "
                                                      "the override applies once it is")
    cell = next((c for c in result.cells if c.grade_id == o.grade_id), None)
    if cell is None:
        return OverrideOutcome(o, Applied.NO_CELL, f"{o.assignment} has no graded cell {o.grade_id!r} (its cells: "
                                                   f"{', '.join(g for g, _ in cells[o.assignment])})")
    if not 0 <= o.points <= cell.max_score:
        return OverrideOutcome(o, Applied.OUT_OF_RANGE, f"{o.points:g} points: a cell's points are between 0 and its "
                                                        f"max_score, {cell.max_score:g}")
    return OverrideOutcome(o, Applied.APPLIED, tests=cell.score, max_score=cell.max_score)


def adjust(results: ClassResults, rules: Rules = Rules(), submitted: Mapping[Key, SubmittedAt] | None = None) -> ClassAdjustments:
    """The instructor's word on every submission of `results`: the overrides, then the late penalty (`submitted`:
    when each collected submission was handed in, submission_times). Pure: the results are not changed."""
    submitted = submitted or {}
    by_key = {(r.student_id, r.assignment): r for r in results.submissions}
    last = {(o.student_id, o.assignment, o.grade_id): o.line for o in rules.overrides}
    students = {r.student_id for r in results.submissions}
    outcomes = [_outcome(o, by_key, results.cells, students, last) for o in rules.overrides]
    applied: dict[Key, dict[str, OverrideOutcome]] = {}
    for outcome in outcomes:
        if outcome.applied is Applied.APPLIED:
            applied.setdefault((outcome.override.student_id, outcome.override.assignment), {})[outcome.override.grade_id] = outcome
    used: set[Extension] = set()
    adjusted: dict[Key, Adjustment] = {}
    for key, result in sorted(by_key.items()):
        mine = applied.get(key, {})
        deadline, extension = rules.deadline(*key)
        when = submitted.get(key)
        late_by, timing = timedelta(0), Timing.NO_DEADLINE
        if deadline is not None:
            used.update([extension] if extension is not None else [])
            if when is None:
                timing = Timing.NO_NOTEBOOK
            elif when.when is None:
                timing = Timing.TIME_UNKNOWN
            else:
                late_by = instant_difference(when.when, deadline)
                timing = Timing.LATE if rules.penalty.units(late_by) else Timing.ON_TIME
        share = rules.penalty.share(late_by) if timing is Timing.LATE else 0.0
        if result.status is Status.NOT_GRADED:
            tests = raw = penalty = final = None
        else:
            tests = result.score
            raw = sum(mine[c.grade_id].override.points if c.grade_id in mine else c.score for c in result.cells)
            penalty = rules.penalty.points(late_by, raw, result.max_score) if share else 0.0
            final = round(raw - penalty, 6) if penalty else raw
        top = result.max_score if result.cells else sum(p for _, p in results.cells.get(result.assignment, []))
        adjusted[key] = Adjustment(result.student_id, result.assignment, top, tests, raw, penalty, final,
                                   tuple(mine[c.grade_id] for c in result.cells if c.grade_id in mine), timing, deadline,
                                   rules.deadlines.get(result.assignment), extension, when, late_by, share, rules.penalty)
    unused = [e for e in rules.extensions if e not in used]
    return ClassAdjustments(adjusted, outcomes, unused, rules)
