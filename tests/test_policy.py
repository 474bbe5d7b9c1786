"""The instructor's word beside the tests (autograder/policy.py): the late penalty, deadlines in their time zone
across a change of the clocks, extensions, overrides applied to fresh and cached results, overrides that find
nothing reported, and how all of it shows in grades.csv, tests.csv, flags.csv, report.html and the feedback page.
Fast: records built by hand, nothing graded (the end-to-end check on the small class is in
tests/test_operations.py)."""
import csv
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from autograder import feedback, outputs, pipeline, policy, report
from autograder.editions import Edition, say
from autograder.grade import write_result
from autograder.model import CellResult, ClassResults, Job, Limits, Outcome, Status, SubmissionResult
from autograder.policy import (Applied, Base, Extension, Override, Penalty, PolicyError, Rules, SubmittedAt, Timing,
                               Unit)

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
A = "01_attention"


def at(text):
    """An instant written with its offset (the tests' own reading, not the grader's)."""
    return datetime.fromisoformat(text)


def utc(moment):
    """The instant in UTC: Python never finds a time of the hour that happens twice equal to another zone's (PEP 495)."""
    return moment.astimezone(UTC)


# --- the penalty rule ------------------------------------------------------------------------------------------------
def test_the_penalty_counts_started_days_and_stops_at_its_cap():
    rule = Penalty(rate=0.1, per=Unit.DAY, cap=0.3)
    assert [rule.units(timedelta(hours=h)) for h in (-5, 0, 0.001, 23.99, 24, 24.01, 71, 200)] == [0, 0, 1, 1, 1, 2, 3, 9]
    assert [rule.share(timedelta(hours=h)) for h in (0, 1, 25, 49, 200)] == [0, 0.1, 0.2, 0.3, 0.3]
    assert rule.points(timedelta(hours=25), 30.0, 41.0) == 6.0          # 20% of the score
    assert Penalty(rate=0.1, of=Base.MAX_SCORE).points(timedelta(hours=25), 30.0, 41.0) == 8.2   # 20% of 41
    assert Penalty(rate=0.5, of=Base.MAX_SCORE).points(timedelta(days=3), 10.0, 41.0) == 10.0    # never below 0


def test_the_penalty_by_hours_and_its_grace():
    rule = Penalty(rate=0.02, per=Unit.HOUR, cap=1.0, grace=timedelta(minutes=15))
    assert rule.units(timedelta(minutes=14)) == 0 and rule.units(timedelta(minutes=15)) == 0
    assert rule.units(timedelta(minutes=16)) == 1, "after the grace, lateness counts from the deadline itself"
    assert rule.units(timedelta(minutes=61)) == 2
    assert rule.share(timedelta(hours=10)) == 0.2


# --- times and zones --------------------------------------------------------------------------------------------------
def test_a_deadline_on_the_night_the_clocks_go_forward_is_in_summer_time():
    deadline = policy.parse_time("2027-03-28 23:59", BERLIN)   # Berlin goes from +01:00 to +02:00 at 02:00 that night
    assert deadline == at("2027-03-28T21:59:00+00:00")
    just_after = policy.parse_time("2027-03-28 22:30:00.000000 UTC", BERLIN)   # nbgrader's timestamp.txt
    just_before = policy.parse_time("2027-03-28 21:58:00.000000 UTC", BERLIN)
    assert policy.instant_difference(just_after, deadline) == timedelta(minutes=31)
    assert policy.instant_difference(just_before, deadline) == timedelta(minutes=-1)


def test_a_wall_clock_time_that_does_not_exist_or_happens_twice_is_refused_unless_its_offset_is_given():
    with pytest.raises(ValueError, match="does not exist in Europe/Berlin: the clocks go forward"):
        policy.parse_time("2027-03-28 02:30", BERLIN)
    with pytest.raises(ValueError, match="happens twice in Europe/Berlin: the clocks go back"):
        policy.parse_time("2027-10-31 02:30", BERLIN)
    assert policy.parse_time("2027-10-31 02:30+01:00", BERLIN) == at("2027-10-31T01:30:00+00:00")
    assert policy.parse_time("2027-10-31T02:30:00+02:00", BERLIN) == at("2027-10-31T00:30:00+00:00")


def test_nbgraders_zone_abbreviations_are_read_in_the_courses_zone_even_in_the_hour_that_happens_twice():
    assert utc(policy.parse_time("2027-10-31 02:30:00.000000 CEST", BERLIN)) == at("2027-10-31T00:30:00+00:00")
    assert utc(policy.parse_time("2027-10-31 02:30:00.000000 CET", BERLIN)) == at("2027-10-31T01:30:00+00:00")
    assert policy.parse_time("2027-06-01 12:00:00.5 America/New_York", BERLIN) == at("2027-06-01T16:00:00.5+00:00")
    with pytest.raises(ValueError, match="'PST' is not a time zone"):
        policy.parse_time("2027-06-01 12:00:00 PST", BERLIN)


def test_a_lateness_across_the_change_of_the_clocks_is_real_time():
    deadline = policy.parse_time("2027-03-27 23:59", BERLIN)       # +01:00
    handed = policy.parse_time("2027-03-28 23:59", BERLIN)         # +02:00: 23 hours later, not 24
    assert handed - deadline == timedelta(days=1), "Python's own subtraction of one zone's times is wall-clock"
    assert policy.instant_difference(handed, deadline) == timedelta(hours=23)
    assert Penalty(rate=0.01, per=Unit.HOUR).units(policy.instant_difference(handed, deadline)) == 23


@pytest.mark.parametrize("text,message", [
    ("2027-01-15", "no time of day"), ("15/01/2027 23:59", "not a date and time"),
    ("2027-01-15 23:59 Mars/Olympus", "not a time zone"), ("2027-01-15T23:59+01:00 UTC", "two time zones")])
def test_a_time_that_cannot_be_read_says_why(text, message):
    with pytest.raises(ValueError, match=message):
        policy.parse_time(text, BERLIN)


def test_a_time_without_a_zone_needs_the_policys_zone():
    with pytest.raises(ValueError, match="no time zone, and the policy gives none"):
        policy.parse_time("2027-01-15 23:59", None)
    assert policy.parse_time("2027-01-15 23:59 UTC", None) == at("2027-01-15T23:59:00+00:00")


# --- extensions -------------------------------------------------------------------------------------------------------
def test_an_extension_by_days_keeps_the_time_of_day_across_the_change_of_the_clocks_and_hours_are_real_time():
    course = policy.parse_time("2027-03-27 23:59", BERLIN)
    by_a_day = Extension("alice", A, "ill", days=1).deadline(course)
    assert by_a_day == at("2027-03-28T23:59:00+02:00"), "the same time of day, one calendar day later (23 h later)"
    assert Extension("alice", A, "ill", hours=24).deadline(course) == at("2027-03-29T00:59:00+02:00")
    assert Extension("alice", A, "ill", days=1, hours=2).deadline(course) == at("2027-03-29T01:59:00+02:00")
    until = at("2027-04-02T12:00:00+02:00")
    assert Extension("alice", A, "ill", until=until).deadline(course) == until


def test_an_extension_of_one_assignment_beats_one_of_every_assignment():
    course = policy.parse_time("2027-01-15 23:59", BERLIN)
    rules = Rules(zone=BERLIN, deadlines={A: course, "02_self_attention": course},
                  extensions=(Extension("bob", "*", "accommodation", days=2), Extension("bob", A, "ill", days=5)))
    assert rules.deadline("bob", A) == (at("2027-01-20T23:59:00+01:00"), rules.extensions[1])
    assert rules.deadline("bob", "02_self_attention") == (at("2027-01-17T23:59:00+01:00"), rules.extensions[0])
    assert rules.deadline("carol", A) == (course, None)
    assert rules.deadline("bob", "03_multi_head_attention") == (None, None)


# --- the policy file --------------------------------------------------------------------------------------------------
ASSIGNMENTS = [A, "02_self_attention"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_policy_file_is_read_as_text_with_its_zone(tmp_path):
    rules = policy.read_policy(write(tmp_path / "policy.yml", """
timezone: Europe/Berlin
deadlines:
  01_attention: 2027-03-28 23:59
  02_self_attention: 2027-04-11 12:00 UTC
penalty: {rate: 10%, per: day, cap: 0.5, grace_minutes: 15, of: max_score}
extensions:
  - {student: 012345, assignment: 01_attention, days: 2, reason: "ill: a doctor's note"}
  - {student: "no", assignment: "*", hours: 36, reason: accommodation}
"""), ASSIGNMENTS)
    assert rules.deadlines == {A: at("2027-03-28T23:59:00+02:00"), "02_self_attention": at("2027-04-11T12:00:00+00:00")}
    assert rules.penalty == Penalty(0.1, Unit.DAY, 0.5, timedelta(minutes=15), Base.MAX_SCORE)
    assert [(e.student_id, e.assignment, e.days, e.hours, e.reason) for e in rules.extensions] == \
        [("012345", A, 2, 0.0, "ill: a doctor's note"), ("no", "*", 0, 36.0, "accommodation")], \
        "a student id is text: never an octal number, never a boolean"


@pytest.mark.parametrize("text,message", [
    ("deadline:\n  01_attention: 2027-01-15 23:59", "unknown key 'deadline'"),
    ("deadlines:\n  01_attenton: 2027-01-15 23:59 UTC", "no assignment '01_attenton' in this course"),
    ("deadlines:\n  01_attention: 2027-01-15", "no time of day"),
    ("deadlines:\n  01_attention: 2027-01-15 23:59", "no time zone, and the policy gives none"),
    ("timezone: Europe/Berlln", "not a time zone"),
    ("penalty: {rate: 1.5}", "not between 0 and 1"),
    ("penalty: {per: week}", "`per` is day or hour"),
    ("extensions:\n  - {student: a, assignment: 01_attention, days: 2}", "`reason` is missing"),
    ("extensions:\n  - {student: a, assignment: 01_attention, reason: x}", "either `until`"),
    ("extensions:\n  - {student: a, assignment: '*', until: 2027-01-15 23:59 UTC, reason: x}", "`until` needs one"),
    ("extensions:\n  - {student: a, assignment: 01_attention, days: 1.5, reason: x}", "not a whole number"),
    ("extensions:\n  - {student: a, assignment: 01_attention, days: 1, reason: x}\n"
     "  - {student: a, assignment: 01_attention, days: 2, reason: y}", "has an extension of 01_attention already"),
    ("deadlines: [", "not YAML"),
])
def test_a_policy_file_that_cannot_be_used_says_where_and_why(tmp_path, text, message):
    with pytest.raises(PolicyError, match=message):
        policy.read_policy(write(tmp_path / "policy.yml", text), ASSIGNMENTS)


@pytest.mark.parametrize("text,message", [
    ("student,assignment,grade_id,points,reason\n", "student_id missing"),
    ("student_id,assignment,grade_id,points,reason\ns,a,g,ten,why\n", "line 2: points: 'ten' is not a number"),
    ("student_id,assignment,grade_id,points,reason\ns,a,g,-1,why\n", "line 2: points: '-1'"),
    ("student_id,assignment,grade_id,points,reason\ns,a,g,1,\n", "line 2: no reason"),
    ("student_id,assignment,grade_id,points,reason\ns,a,g\n", "line 2: 3 fields, expected 5"),
])
def test_an_overrides_file_that_cannot_be_used_says_which_line(tmp_path, text, message):
    with pytest.raises(PolicyError, match=message):
        policy.read_overrides(write(tmp_path / "overrides.csv", text))


def test_a_times_file_is_read_in_the_policys_zone(tmp_path):
    path = write(tmp_path / "times.csv", "\ufeffstudent_id,assignment,submitted_at\n"
                                          "s1,01_attention,2027-03-28 23:58\n"
                                          "s2,01_attention,2027-03-29T00:10:00+02:00\n")
    times = policy.read_times(path, BERLIN)
    assert times[("s1", A)].when == at("2027-03-28T21:58:00+00:00") and times[("s1", A)].source == "times.csv line 2"
    assert times[("s2", A)].when == at("2027-03-28T22:10:00+00:00")
    write(path, "student_id,assignment,submitted_at\ns1,01_attention,2027-03-28 23:58\ns1,01_attention,2027-03-29 10:00\n")
    with pytest.raises(PolicyError, match="line 3: s1 and 01_attention are given already"):
        policy.read_times(path, BERLIN)


def test_nbgraders_timestamp_is_read_without_following_a_link(tmp_path):
    folder = tmp_path / "alice" / A
    folder.mkdir(parents=True)
    assert policy.read_timestamp(folder, BERLIN).problem.startswith("no timestamp.txt")
    (folder / "timestamp.txt").write_text("2027-03-28 22:30:00.123456 UTC")
    read = policy.read_timestamp(folder, BERLIN)
    assert read.when == at("2027-03-28T22:30:00.123456+00:00") and read.source == "timestamp.txt"
    (folder / "timestamp.txt").write_text("yesterday, late")
    assert "holds no time" in policy.read_timestamp(folder, BERLIN).problem
    (folder / "timestamp.txt").unlink()
    (tmp_path / "elsewhere.txt").write_text("2027-03-28 22:30:00 UTC")
    (folder / "timestamp.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert policy.read_timestamp(folder, BERLIN) == SubmittedAt(None, problem="timestamp.txt is a link, which is never followed")


# --- applied to a class -----------------------------------------------------------------------------------------------
DEADLINE = "2027-03-28 23:59"


def cell(grade_id, score, top):
    return CellResult(grade_id, score, top, "" if score == top else "wrong",
                      outcome=Outcome.PASSED if score == top else Outcome.FAILED)


def a_class():
    """Four students of one assignment of 10 points (cells a: 4, b: 6) and one that was not graded."""
    def result(student, a, b, status=Status.GRADED):
        return SubmissionResult(student, A, status, (cell("a", a, 4.0), cell("b", b, 6.0)) if status is not Status.NOT_GRADED else (),
                                reason="the worker died" if status is Status.NOT_GRADED else "")
    return ClassResults(submissions=[result("late", 4.0, 6.0), result("extended", 4.0, 3.0), result("on-time", 0.0, 6.0),
                                     result("unknown", 4.0, 6.0), result("lost", 0, 0, Status.NOT_GRADED)],
                        cells={A: [("a", 4.0), ("b", 6.0)]})


def rules(**changes):
    given = dict(zone=BERLIN, deadlines={A: policy.parse_time(DEADLINE, BERLIN)}, penalty=Penalty(rate=0.1, cap=0.5),
                 extensions=(Extension("extended", A, "a doctor's note", days=2),
                             Extension("nobody", A, "a typo of a student id", days=1)),
                 overrides=(Override("extended", A, "b", 5.0, "regrade: the shape was right", 2),
                            Override("on-time", A, "a", 2.0, "partial credit", 3),
                            Override("on-time", A, "no_such_cell", 1.0, "an old cell", 4),
                            Override("ghost", A, "a", 1.0, "who?", 5),
                            Override("late", "09_nothing", "a", 1.0, "which assignment?", 6),
                            Override("lost", A, "a", 1.0, "not graded yet", 7),
                            Override("late", A, "a", 9.0, "too many", 8),
                            Override("on-time", A, "a", 3.0, "partial credit, more", 9)))
    given.update(changes)
    return Rules(**given)


def times():
    return {("late", A): SubmittedAt(policy.parse_time("2027-03-29 10:00", BERLIN), "times.csv line 2"),   # 10 h 1 min
            ("extended", A): SubmittedAt(policy.parse_time("2027-03-30 20:00", BERLIN), "timestamp.txt"),
            ("on-time", A): SubmittedAt(policy.parse_time("2027-03-28 23:00", BERLIN), "timestamp.txt"),
            ("unknown", A): SubmittedAt(None, problem="no timestamp.txt beside the notebook, and no row in --times"),
            ("lost", A): SubmittedAt(policy.parse_time("2027-03-28 23:00", BERLIN), "timestamp.txt")}


def test_overrides_then_the_penalty_give_the_final_score_and_the_tests_score_is_kept():
    adjusted = policy.adjust(a_class(), rules(), times())
    by = adjusted.submissions
    assert (by[("late", A)].timing, by[("late", A)].late_by) == (Timing.LATE, timedelta(hours=10, minutes=1))
    assert (by[("late", A)].tests_score, by[("late", A)].raw_score, by[("late", A)].penalty_points,
            by[("late", A)].final_score) == (10.0, 10.0, 1.0, 9.0)
    extended = by[("extended", A)]
    assert extended.timing is Timing.ON_TIME and extended.deadline == at("2027-03-30T23:59:00+02:00")
    assert (extended.tests_score, extended.raw_score, extended.final_score) == (7.0, 9.0, 9.0)
    assert [(o.override.grade_id, o.tests, o.override.points) for o in extended.overrides] == [("b", 3.0, 5.0)]
    on_time = by[("on-time", A)]
    assert (on_time.tests_score, on_time.raw_score, on_time.final_score) == (6.0, 9.0, 9.0), "the later line counts"
    unknown = by[("unknown", A)]
    assert unknown.timing is Timing.TIME_UNKNOWN and unknown.final_score == 10.0, "an unknown time is not penalised"
    lost = by[("lost", A)]
    assert (lost.tests_score, lost.raw_score, lost.final_score, lost.max_score) == (None, None, None, 10.0)
    assert [e.student_id for e in adjusted.unused_extensions] == ["nobody"]


def test_an_override_that_finds_nothing_to_apply_to_is_reported_with_the_reason():
    outcomes = {o.override.line: o for o in policy.adjust(a_class(), rules(), times()).overrides}
    assert {line: o.applied for line, o in outcomes.items()} == {
        2: Applied.APPLIED, 3: Applied.REPLACED, 4: Applied.NO_CELL, 5: Applied.NO_STUDENT, 6: Applied.NO_ASSIGNMENT,
        7: Applied.NOT_GRADED, 8: Applied.OUT_OF_RANGE, 9: Applied.APPLIED}
    assert "no graded cell 'no_such_cell' (its cells: a, b)" in outcomes[4].detail
    assert "replaced by line 9" in outcomes[3].detail and "between 0 and its max_score, 4" in outcomes[8].detail
    flags = policy.adjust(a_class(), rules(), times()).flags()
    assert ("unknown", A, "submission time unknown, not penalised: no timestamp.txt beside the notebook, and no row in "
                          "--times") in flags
    assert ("on-time", A, "override not applied (overrides.csv line 4, cell no_such_cell): " + outcomes[4].detail) in flags
    assert len([f for f in flags if f[2].startswith("override not applied")]) == 6


def test_no_rules_change_nothing():
    adjusted = policy.adjust(a_class())
    for a in adjusted.submissions.values():
        assert a.final_score == a.raw_score == a.tests_score and not a.changed and a.timing is Timing.NO_DEADLINE
    assert adjusted.flags() == []


def test_an_override_applies_to_a_cached_result_and_a_change_of_the_file_changes_what_is_written(tmp_path):
    """The result on disk holds what the tests gave; each run reads it back (pipeline._cached, as a rerun does) and
    applies the overrides as the file then says: the file's change changes grades.csv, never the cached result."""
    results = a_class()
    job = Job(student_id="extended", assignment=A, notebook="", fingerprint="f", course="", workdir="",
              result=str(tmp_path / "results" / "x.json"), feedback="", limits=Limits(), deadline=1)
    fresh = SubmissionResult("extended", A, Status.GRADED, (cell("a", 4.0, 4.0), cell("b", 3.0, 6.0)), fingerprint="f")
    write_result(fresh, job.result)
    cached_bytes = Path(job.result).read_bytes()
    written = []
    for overrides in [(Override("extended", A, "b", 5.0, "regrade: the shape was right", 2),),
                      (Override("extended", A, "b", 6.0, "regrade, second look", 2),), ()]:
        cached = pipeline._cached(job)
        assert cached == fresh
        results.submissions = [cached]
        results.adjustments = policy.adjust(results, Rules(overrides=overrides))
        out = tmp_path / f"out-{len(written)}"
        report.write_report(results, out)
        written.append({name: list(csv.DictReader((out / name).open(encoding="utf-8")))
                        for name in ("grades.csv", "tests.csv")})
    assert [w["grades.csv"][0]["score"] for w in written] == ["7", "7", "7"], "the tests' score stays as it was"
    assert [w["grades.csv"][0]["final_score"] for w in written] == ["9", "10", "7"]
    assert [[(r["override"], r["override_reason"]) for r in w["tests.csv"] if r["grade_id"] == "b"] for w in written] == \
        [[("5", "regrade: the shape was right")], [("6", "regrade, second look")], [("", "")]]
    assert Path(job.result).read_bytes() == cached_bytes, "an override is never stored in a result"


# --- in OUT: the CSV files, the report, the feedback page, the permissions --------------------------------------------
def graded(tmp_path, edition=Edition.EN):
    results = a_class()
    results.adjustments = policy.adjust(results, rules(), times())
    report.write_report(results, tmp_path / "out", edition=edition)
    return tmp_path / "out"


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_grades_csv_keeps_its_columns_and_adds_the_instructors_word_at_the_end(tmp_path):
    out = graded(tmp_path)
    header = (out / "grades.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:4] == ["student_id", "assignment", "score", "max_score"]
    assert header[4:] == ["raw_score", "late_penalty", "final_score", "submitted_at", "deadline", "late_by_hours", "notes"]
    by = {r["student_id"]: r for r in rows(out / "grades.csv")}
    assert {k: by["late"][k] for k in header[2:10]} == {
        "score": "10", "max_score": "10", "raw_score": "10", "late_penalty": "1", "final_score": "9",
        "submitted_at": "2027-03-29T10:00:00+02:00", "deadline": "2027-03-28T23:59:00+02:00", "late_by_hours": "10.02"}
    assert "late by 10 h 1 min: 10%" in by["late"]["notes"]
    assert "extension (2 d) to 2027-03-30 23:59:00 CEST: a doctor's note" in by["extended"]["notes"]
    assert "override b: 5 / 6 (the tests gave 3): regrade: the shape was right" in by["extended"]["notes"]
    assert (by["extended"]["score"], by["extended"]["final_score"]) == ("7", "9")
    assert "submission time unknown, not penalised" in by["unknown"]["notes"] and by["unknown"]["late_by_hours"] == ""
    assert (by["lost"]["score"], by["lost"]["final_score"], by["lost"]["max_score"]) == ("", "", "10")
    gradebook = {r["Student ID"]: r for r in rows(out / "gradebook.csv")}
    assert gradebook["late"][f"{A} [10]"] == "9" and gradebook["extended"][f"{A} [10]"] == "9", "the LMS gets the final"
    flags = rows(out / "flags.csv")
    assert any(f["student_id"] == "unknown" and "submission time unknown" in f["reason"] for f in flags)
    assert any(f["student_id"] == "ghost" and "no student 'ghost' in this class" in f["reason"] for f in flags)


def test_the_report_lists_late_work_extensions_and_every_override_with_what_became_of_it(tmp_path):
    import html
    text = html.unescape((graded(tmp_path) / "report.html").read_text(encoding="utf-8"))
    late = text.split("<h2>Deadlines and late work</h2>", 1)[1].split("<h2>", 1)[0]
    assert "1 late, 1 handed in at a time not known" in late
    assert "<td>late</td>" in late and "10 h 1 min" in late and "10%: -1" in late
    assert "2 d: a doctor's note" in late and "a typo of a student id" in late   # an extension that applied to nothing
    assert "<td>on-time</td>" not in late
    overrides = text.split("<h2>Overrides by the instructor</h2>", 1)[1].split("<h2>", 1)[0]
    assert "2 of 8 applied" in overrides
    for reason in ("regrade: the shape was right", "partial credit, more", "an old cell", "who?", "too many"):
        assert reason in overrides, reason
    assert "NOT applied: 01_attention has no graded cell 'no_such_cell'" in overrides


def test_the_chinese_report_says_it_in_chinese(tmp_path):
    text = (graded(tmp_path, Edition.ZH) / "report.html").read_text(encoding="utf-8")
    for heading in ("Deadlines and late work", "Overrides by the instructor"):
        assert f"<h2>{say(Edition.ZH, heading)}</h2>" in text and heading not in text


def page_with(tmp_path, edition):
    """A feedback page as the worker writes it: nbconvert's page aside, the grader's summary in <main>."""
    summary = feedback.summary_html(A, {"a": (4.0, 4.0), "b": (3.0, 6.0)}, {"a": "passed", "b": "wrong"}, edition)
    page = outputs.page_path(tmp_path / "out", "extended", A)
    page.parent.mkdir(parents=True)
    page.write_text(f"<html><body><main>\n{summary}<pre>the student's cells</pre></main></body></html>", encoding="utf-8")
    return page


@pytest.mark.parametrize("edition", [Edition.EN, Edition.ZH])
def test_the_feedback_page_shows_the_changes_with_their_reasons_and_goes_back_when_they_are_taken_back(tmp_path, edition):
    page = page_with(tmp_path, edition)
    as_worker_wrote = page.read_bytes()
    results = a_class()
    results.submissions = [r for r in results.submissions if r.student_id == "extended"]
    results.submissions[0] = SubmissionResult("extended", A, Status.GRADED, (cell("a", 4.0, 4.0), cell("b", 3.0, 6.0)))
    late = {("extended", A): SubmittedAt(policy.parse_time("2027-03-31 01:00", BERLIN), "timestamp.txt")}
    results.adjustments = policy.adjust(results, rules(), late)
    report.write_report(results, tmp_path / "out", edition=edition)
    text = page.read_text(encoding="utf-8")
    assert "<pre>the student's cells</pre>" in text and text.count("<!-- autograder:score") == 1
    if edition is Edition.EN:
        assert "Score: 8.1 / 10" in text and "The tests gave 7 / 10" in text
        assert "Test cell b: 5 / 6 points, set by your instructor (the tests gave 3). Reason: regrade: the shape was right" in text
        assert "Your deadline was extended to 2027-03-30 23:59:00 CEST (the course&#x27;s: 2027-03-28 23:59:00 CEST). " \
               "Reason: a doctor&#x27;s note" in text
        assert "Handed in 2027-03-31 01:00:00 CEST, 1 h 1 min after your deadline (2027-03-30 23:59:00 CEST): -0.9 points, " \
               "10% of your score (10% per started day late, at most 50%)." in text
    else:
        assert "得分：8.1 / 10" in text and "原因：regrade: the shape was right" in text and "1 小时 1 分钟" in text
    report.write_report(results, tmp_path / "out", edition=edition)
    assert page.read_text(encoding="utf-8") == text, "writing the report again changes nothing"
    results.adjustments = policy.adjust(results)
    report.write_report(results, tmp_path / "out", edition=edition)
    assert page.read_bytes() == as_worker_wrote, "with nothing changed, the page is the worker's again"


def test_what_the_grader_writes_in_out_is_the_instructors_only(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    (out / "mine.txt").write_text("the instructor's own file")
    os.chmod(out / "mine.txt", 0o644)
    page = page_with(tmp_path, Edition.EN)
    os.chmod(page, 0o644)
    pipeline.private_folder(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    graded(tmp_path)
    for path in [out / "grades.csv", out / "report.html", page]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "mine.txt").stat().st_mode) == 0o644, "a file the grader did not write is left alone"


def test_a_file_of_the_class_that_others_can_read_is_warned_about(tmp_path):
    path = write(tmp_path / "overrides.csv", "student_id,assignment,grade_id,points,reason\n")
    os.chmod(path, 0o644)
    assert "can be read by other users" in policy.readable_by_others(path) and "chmod 600" in policy.readable_by_others(path)
    os.chmod(path, 0o600)
    assert policy.readable_by_others(path) is None


def test_the_command_line_refuses_an_unusable_file_before_grading(tmp_path, capsys):
    from autograder import __main__ as cli
    (tmp_path / "submitted").mkdir()
    bad = write(tmp_path / "policy.yml", "deadlines:\n  01_attention: 2027-03-28 02:30\ntimezone: Europe/Berlin\n")
    with pytest.raises(SystemExit) as stopped:
        cli.parse_args(["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--policy", str(bad),
                        "--unsafe-no-sandbox"])
    assert stopped.value.code == 2
    assert "policy.yml: deadlines: 01_attention: 2027-03-28 02:30 does not exist in Europe/Berlin" in capsys.readouterr().err


# --- Moodle's grading worksheet as --times ------------------------------------------------------------------------------
WORKSHEET = (  # as an English Moodle 4 site writes "Download grading worksheet" (the times in the downloader's zone)
    '\ufeff"Identifier","Full name","Email address","Status","Grade","Maximum Grade","Grade can be changed",'
    '"Last modified (submission)","Last modified (grade)","Feedback comments"\n'
    '"Participant 4242","Jo Smith",jo.smith@uni.example,"Submitted for grading",,41.00,Yes,'
    '"Sunday, 28 March 2027, 11:58 PM",-,\n'
    '"Participant 4243","Ana de la Cruz",ana@uni.example,"No submission",,41.00,Yes,-,-,\n'
    '"Participant 4244","Bob Lee",bob.lee@uni.example,"Submitted for grading",,41.00,Yes,'
    '"Monday, 29 March 2027, 8:05 AM",-,\n'
    '"Participant 4245","Eve Night",eve@uni.example,"Submitted for grading - Graded",30.00,41.00,Yes,'
    '"Sunday, 31 October 2027, 2:30 AM","Monday, 1 November 2027, 9:00 AM",\n'
    '"Participant 4246","Mo Early",mo@uni.example,"Submitted for grading",,41.00,Yes,'
    '"Saturday, 3 April 2027, 12:10 AM",-,\n'
    '"Participant 4247","Zed Stranger",zed@elsewhere.example,"Submitted for grading",,41.00,Yes,'
    '"Friday, 2 April 2027, 12:15 PM",-,\n')
ROSTER = ("student_id,name,email\njsmith,Jo Smith,Jo.Smith@UNI.example\nalee,\"Lee, Bob\",\nana,Ana de la Cruz,\n"
          "eve,Eve Night,eve@uni.example\nmo,Mo Early,\n")


def worksheet_rules(tmp_path, roster=True, assignment=A, assignments=(A, "02_self_attention")):
    from autograder.roster import parse_roster
    return policy.load_rules(write(tmp_path / "policy.yml", "timezone: Europe/Berlin\n"),
                             write(tmp_path / "grading-worksheet.csv", WORKSHEET), None, assignments,
                             parse_roster(ROSTER, "roster.csv") if roster else None, assignment)


def test_moodles_worksheet_gives_the_times_of_the_roster_students_in_the_policys_zone(tmp_path):
    rules = worksheet_rules(tmp_path)
    assert rules.times[("jsmith", A)] == SubmittedAt(at("2027-03-28T23:58:00+02:00"), "grading-worksheet.csv line 2"), \
        "by email, case folded; in summer time, the clocks went forward that night"
    assert utc(rules.times[("alee", A)].when) == at("2027-03-29T06:05:00+00:00"), "by the name, in either order; 8:05 AM"
    assert utc(rules.times[("mo", A)].when) == at("2027-04-02T22:10:00+00:00"), "12:10 AM is ten past midnight"
    eve = rules.times[("eve", A)]
    assert utc(eve.when) == at("2027-10-31T00:30:00+00:00") and "the earlier taken" in eve.source, \
        "2:30 happens twice that night in Berlin: the earlier instant, in the student's favour"
    assert ("ana", A) not in rules.times, "'-': nothing handed in, no time (timestamp.txt, else unknown and flagged)"
    assert [(r.who, r.keys, r.problem) for r in rules.sheet if r.problem] == [
        ("Zed Stranger_4247", (), "'Zed Stranger' (zed@elsewhere.example, Participant 4247) matches no student of the "
                                  "roster")]


def test_a_worksheet_row_that_goes_to_no_submission_is_flagged_never_an_error(tmp_path):
    rules = worksheet_rules(tmp_path)
    results = ClassResults(submissions=[SubmissionResult(s, A, Status.GRADED, (cell("a", 4.0, 4.0),))
                                        for s in ("jsmith", "alee", "eve", "mo")], cells={A: [("a", 4.0)]})
    flags = policy.adjust(results, rules, dict(rules.times)).flags()
    assert [f for f in flags if f[0] == "Zed Stranger_4247"] == [
        ("Zed Stranger_4247", A, "grading-worksheet.csv line 7: 'Zed Stranger' (zed@elsewhere.example, Participant "
                                 "4247) matches no student of the roster")]
    assert len(flags) == 1


def test_without_a_roster_a_worksheet_row_is_its_email_its_name_or_moodles_download_name(tmp_path):
    rules = worksheet_rules(tmp_path, roster=False)
    when = at("2027-03-28T23:58:00+02:00")
    for student in ("jo.smith@uni.example", "Jo Smith", "Jo Smith_4242"):   # the last: a Moodle download's folder
        assert rules.times[(student, A)].when == when
    results = ClassResults(submissions=[SubmissionResult("Jo Smith_4242", A, Status.GRADED, (cell("a", 4.0, 4.0),))],
                           cells={A: [("a", 4.0)]})
    flagged = [f[0] for f in policy.adjust(results, rules, {}).unmatched_times()]
    assert flagged == ["Bob Lee_4244", "Eve Night_4245", "Mo Early_4246", "Zed Stranger_4247"]


def test_a_worksheet_names_no_assignment_so_the_grader_needs_one(tmp_path):
    with pytest.raises(PolicyError, match="does not say its assignment: give --assignment ID"):
        worksheet_rules(tmp_path, assignment=None)
    assert ("jsmith", A) in worksheet_rules(tmp_path, assignment=None, assignments=(A,)).times, "the course's one"
    assert ("jsmith", "02_self_attention") in worksheet_rules(tmp_path, assignment="02_self_attention").times


@pytest.mark.parametrize("text, message", [
    ("", "set `timezone` in the policy"),
    ("timezone: Europe/Berlin\n", "'28 mars 2027, 23:58' is not a time as Moodle writes it on an English site"),
])
def test_a_worksheet_that_cannot_be_read_says_why(tmp_path, text, message):
    sheet = WORKSHEET.replace("Sunday, 28 March 2027, 11:58 PM", "28 mars 2027, 23:58")
    with pytest.raises(PolicyError, match=message):
        policy.load_rules(write(tmp_path / "policy.yml", text), write(tmp_path / "w.csv", sheet), None, (A,), None, A)


def test_moodles_english_time_of_day_in_twelve_hours():
    assert policy.moodle_time("Monday, 7 December 2026, 10:30 PM") == datetime(2026, 12, 7, 22, 30)
    assert policy.moodle_time("Tuesday, 8 December 2026, 12:05 PM") == datetime(2026, 12, 8, 12, 5)
    assert policy.moodle_time("Tuesday, 8 December 2026, 09:05 am") == datetime(2026, 12, 8, 9, 5)
    assert [policy.moodle_time(t) for t in ("-", "31 February 2027, 1:00 PM", "7 December 2026, 13:30 PM",
                                            "7 Dezember 2026, 10:30 PM")] == [None] * 4
