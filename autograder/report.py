"""Write the results of a grading run to OUT/.

grades.csv, tests.csv, errors.csv, flags.csv (the autograder contract), gradebook.csv (one row per
student, one column per assignment: the layout LMS gradebooks import), misconceptions.csv (one row per
student and recognised mistake), and report.html, a page that works offline: the mistakes of the class
grouped by misconception across assignments (how many students, on which cells, the fix, and a link to
the book section that teaches it), then per assignment the score distribution, the pass rate of every
graded test cell and component, the most common test messages and the students who need help, and
the error and flag lists.

report.html is written in the instructor's language (`--language`: every text through editions.say, the
misconceptions from zh/mistakes/, the links to the book's edition in that language); the CSV files are not
(their column names are an interface).

The instructor's word (autograder/policy.py: overrides, deadlines, extensions, late penalties) is written beside
what the tests gave, never instead of it: grades.csv and tests.csv keep their first columns as they were and get
new ones at the end (the score with the overrides, the penalty, the final score, the times, the reasons),
gradebook.csv holds the final scores, report.html lists late work and every override with what became of it, and
each feedback page's score block is written again (feedback.show_adjustment). What the grader writes in OUT is
readable by the instructor only (`keep_private`).
"""
from __future__ import annotations

import csv
import html
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

from autograder import editions, outputs, policy, similarity
from autograder.editions import Edition, say
from autograder.feedback import show_adjustment
from autograder.model import ClassResults, Outcome, Pair, Status, SubmissionResult
from autograder.policy import Adjustment, Applied, ClassAdjustments, Timing

REPO = Path(__file__).resolve().parent.parent
BOOK_SOURCE = REPO / "book"
BUILT_BOOK = REPO / "_build" / "html"
HELP_LIMIT = 15          # students listed as needing help, per assignment

# grades.csv and tests.csv: the contract's columns first, as they always were, then the instructor's word
GRADES_HEADER = ["student_id", "assignment", "score", "max_score",          # score: what the tests gave
                 "raw_score",        # with the instructor's overrides, before any late penalty
                 "late_penalty",     # points deducted for lateness
                 "final_score",      # raw_score - late_penalty: what counts (gradebook.csv)
                 "submitted_at", "deadline",   # ISO 8601 with the offset of the deadline's zone; deadline: the student's
                 "late_by_hours",    # after the student's deadline (empty: no deadline, or the time is unknown)
                 "notes"]            # the overrides, the extension, the lateness, each with its reason
TESTS_HEADER = ["student_id", "assignment", "grade_id", "score", "max_score",
                "override", "override_reason"]   # the instructor's points for the cell, and why (empty: none)
GradeRow = tuple[str, ...]                  # GRADES_HEADER
TestRow = tuple[str, ...]                   # TESTS_HEADER
ReasonRow = tuple[str, str, str]            # student_id, assignment, reason (errors.csv, flags.csv)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A CSV field that no spreadsheet runs as a formula: text starting with = + - @ tab or CR gets a
    leading apostrophe (numbers, written by the grader, are left as they are)."""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        try:
            float(text)
            return text
        except ValueError:
            return "'" + text
    return text


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Iterable[object]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([spreadsheet_safe(field) for field in row] for row in rows)


def _points(x: float) -> str:
    return f"{x:g}"


def adjustments(results: ClassResults) -> ClassAdjustments:
    """The instructor's word on the class (pipeline applies it; none given: every score as the tests gave it)."""
    return results.adjustments if results.adjustments is not None else policy.adjust(results)


def _optional(x: float | None) -> str:
    return "" if x is None else _points(x)


def _grade_columns(a: Adjustment | None) -> tuple[str, ...]:
    """The columns of grades.csv after the contract's four."""
    if a is None:
        return ("",) * (len(GRADES_HEADER) - 4)
    submitted = a.submitted.when if a.submitted is not None else None
    late = f"{max(a.late_by.total_seconds(), 0) / 3600:.2f}" if a.timing in (Timing.LATE, Timing.ON_TIME) else ""
    return (_optional(a.raw_score), _optional(a.penalty_points), _optional(a.final_score),
            policy.iso(submitted, a.zone) if submitted is not None else "",
            policy.iso(a.deadline) if a.deadline is not None else "", late, a.notes())


def _rows(results: ClassResults) -> tuple[list[GradeRow], list[TestRow], list[ReasonRow], list[ReasonRow]]:
    """(grades, tests, errors, flags) rows from ClassResults; a submission that was not graded has empty
    scores (never a 0: a 0 is only ever the student's)."""
    grades: list[GradeRow] = []
    tests: list[TestRow] = []
    errors: list[ReasonRow] = []
    flags: list[ReasonRow] = []
    adjusted = adjustments(results)
    for r in results.submissions:
        canonical = results.cells.get(r.assignment, [])
        top = sum(points for _, points in canonical)
        a = adjusted.submissions.get((r.student_id, r.assignment))
        overrides = {o.override.grade_id: o.override for o in a.overrides} if a is not None else {}
        if r.status is Status.NOT_GRADED:
            grades.append((r.student_id, r.assignment, "", _points(top)) + _grade_columns(a))
            tests.extend((r.student_id, r.assignment, g, "", _points(p), "", "") for g, p in canonical)
            errors.append((r.student_id, r.assignment, f"not graded: {r.reason}"))
        else:
            grades.append((r.student_id, r.assignment, _points(r.score), _points(r.max_score)) + _grade_columns(a))
            tests.extend((r.student_id, r.assignment, c.grade_id, _points(c.score), _points(c.max_score))
                         + ((_points(overrides[c.grade_id].points), overrides[c.grade_id].reason)
                            if c.grade_id in overrides else ("", "")) for c in r.cells)
            if r.status is Status.STUDENT_ERROR:
                errors.append((r.student_id, r.assignment, r.reason))
        flags.extend((r.student_id, r.assignment, flag) for flag in r.flags)
    flags.extend(adjusted.flags())
    errors.extend(results.problems)
    return grades, tests, sorted(errors), flags


def write_report(results: ClassResults, out: str | os.PathLike[str], book_url: str | None = None,
                 edition: Edition = Edition.EN) -> None:
    """Every file of OUT/; `book_url` is where the book is read (default: this repository's built book);
    report.html is in `edition` (the CSV files are the same in every edition)."""
    out = Path(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    grades, tests, errors, flags = _rows(results)
    errors = sorted(errors + _show_on_pages(results, out))
    write_csv(out / "grades.csv", GRADES_HEADER, grades)
    write_csv(out / "tests.csv", TESTS_HEADER, tests)
    write_csv(out / "errors.csv", ["student_id", "assignment", "reason"], errors)
    write_csv(out / "flags.csv", ["student_id", "assignment", "reason"], flags)
    _write_gradebook(grades, out / "gradebook.csv")
    write_csv(out / "similarity.csv", SIMILARITY_HEADER, similarity_rows(results.similar))
    write_csv(out / "misconceptions.csv", ["student_id", "assignment", "misconception", "grade_ids"],
           [(s, a, key, " ".join(cells)) for (key, a, s), cells in sorted(misconception_cells(results).items())])
    (out / "report.html").write_text(report_html(results, errors, flags, book_url, edition), encoding="utf-8")
    keep_private(out)


def _show_on_pages(results: ClassResults, out: Path) -> list[ReasonRow]:
    """Each graded submission's feedback page shows the instructor's changes (its score block written again, also
    where nothing changed, so that a change taken back leaves the page as the worker wrote it); rows for
    errors.csv where a page cannot show them."""
    problems: list[ReasonRow] = []
    adjusted = adjustments(results)
    for r in results.submissions:
        a = adjusted.submissions.get((r.student_id, r.assignment))
        page = outputs.page_path(out, r.student_id, r.assignment)
        if r.status is not Status.GRADED or a is None or not page.is_file():
            continue
        if not show_adjustment(page, a) and a.changed:
            problems.append((r.student_id, r.assignment, "the feedback page has no score block to show the instructor's "
                                                         "changes: grade it again (--regrade)"))
    return problems


def keep_private(out: Path) -> None:
    """OUT (0700), and every file (0600) and folder (0700) the grader writes in it, readable by its owner only: the
    grades, feedback and kernel output of a class are the instructor's. Links are never followed, and nothing else
    in OUT is touched."""
    def private(path: Path, mode: int) -> None:
        try:
            info = path.lstat()
        except OSError:
            return
        if (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)) and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & mode)
    private(out, 0o700)
    for name in outputs.CLASS_FILES:
        private(out / name, 0o600)
    for name in outputs.FOLDERS:
        if (out / name).is_symlink():
            continue
        for folder, folders, files in os.walk(out / name):
            private(Path(folder), 0o700)
            for file in files:
                private(Path(folder) / file, 0o600)


def _write_gradebook(grades: list[GradeRow], path: Path) -> None:
    """One row per student, the final scores (with the instructor's overrides and late penalties); an assignment
    that was not graded is empty, and so is that student's total."""
    assignments = sorted({row[1] for row in grades})
    top = {row[1]: float(row[3]) for row in grades}
    scores: defaultdict[str, dict[str, str]] = defaultdict(dict)
    final = GRADES_HEADER.index("final_score")
    for row in grades:
        scores[row[0]][row[1]] = row[final]
    header = ["Student ID"] + [f"{a} [{_points(top[a])}]" for a in assignments] + [f"Total [{_points(sum(top.values()))}]"]
    rows: list[list[str]] = []
    for student in sorted(scores):
        cells = [scores[student].get(a, "0") for a in assignments]
        total = "" if "" in cells else _points(sum(float(c) for c in cells))
        rows.append([student] + cells + [total])
    write_csv(path, header, rows)


CHART_WIDTH = 640   # px: the report's charts, inline SVG drawn in the page's own font (any script, no image file)
CHART_ROW = 20      # px per bar of a bar chart


def _svg(title: str, height: float, body: list[str]) -> str:
    label = html.escape(title, quote=True)
    return (f'<svg role="img" aria-label="{label}" width="{CHART_WIDTH}" height="{height:g}" '
            f'viewBox="0 0 {CHART_WIDTH} {height:g}" font-family="sans-serif" font-size="12">'
            f'<title>{label}</title><text x="{CHART_WIDTH / 2:g}" y="16" text-anchor="middle" font-weight="bold">'
            f'{html.escape(title)}</text>{"".join(body)}</svg>')


def _ticks(top: float) -> list[float]:
    """Round values from 0 to `top`, at most seven: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0]
    step = next(m * 10.0 ** e for e in range(-3, 10) for m in (1, 2, 5) if top / (m * 10.0 ** e) <= 6)
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def _axes(left: float, plot: float, top: float, bottom: float, most: float, label: str) -> str:
    """A chart's two axes from (left, top) down to (left, bottom) and right over `plot` px, the horizontal one
    ticked at round values from 0 to `most` and named `label`."""
    ticks = "".join(
        f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#333"/>'
        f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{tick:g}</text>'
        for tick in _ticks(most) for x in [left + plot * tick / most if most > 0 else left])
    return (ticks + f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>'
            f'<line x1="{left}" y1="{bottom}" x2="{left + plot}" y2="{bottom}" stroke="#333"/>'
            f'<text x="{left + plot / 2:.1f}" y="{bottom + 34}" text-anchor="middle">{html.escape(label)}</text>')


def bar_chart(labels: Sequence[str], percents: Sequence[float], title: str, axis: str, color: str) -> str:
    """A horizontal bar chart: one bar per label, as long as its percentage (0 to 100), the value beside it."""
    left = min(320, 12 + 7 * max((len(label) for label in labels), default=4))   # px of the labels' column
    plot = CHART_WIDTH - left - 50
    top, bottom = 28, 28 + CHART_ROW * len(labels)
    body = []
    for i, (label, percent) in enumerate(zip(labels, percents)):
        y = top + i * CHART_ROW
        width = plot * max(0.0, min(100.0, percent)) / 100
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
                    f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="{CHART_ROW - 6}" fill="{color}"/>'
                    f'<text x="{left + width + 4:.1f}" y="{y + 14}">{percent:.0f}%</text>')
    body.append(_axes(left, plot, top, bottom, 100, axis))
    return _svg(title, bottom + 44, body)


def histogram(scores: Sequence[float], top: float, title: str, x_axis: str, y_axis: str) -> str:
    """The scores' distribution over [0, top]: at most 20 bins (one per point where the points are fewer), a score
    of exactly `top` in the last."""
    bins = max(1, min(20, int(top) + 1))
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(bins * score / top))) if top > 0 else 0] += 1
    left, plot, base, height = 50, CHART_WIDTH - 80, 200, 170   # px: the plot's left, width, baseline, height
    most = max(counts, default=0) or 1
    body = []
    for i, count in enumerate(counts):
        bar = height * count / most
        body.append(f'<rect x="{left + plot * i / bins + 1:.1f}" y="{base - bar:.1f}" width="{plot / bins - 2:.1f}" '
                    f'height="{bar:.1f}" fill="#1f77b4"><title>{count}</title></rect>')
    body.append(_axes(left, plot, base - height, base, top, x_axis))
    step = max(1, -(-most // 4))
    for count in range(0, most + 1, step):
        y = base - height * count / most
        body.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#333"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{count}</text>')
    body.append(f'<text x="14" y="{base - height / 2:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 14 {base - height / 2:.1f})">{html.escape(y_axis)}</text>')
    return _svg(title, base + 44, body)


def _table(header: Sequence[object], rows: Sequence[Sequence[object]], edition: Edition = Edition.EN) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if rows else f"<p>{say(edition, 'None.')}</p>"


NOT_TRIED = (Outcome.NOT_ATTEMPTED, Outcome.NOT_RUN)   # parts the student did not do (or that never ran)


def _graded(results: ClassResults) -> list[SubmissionResult]:
    return [r for r in results.submissions if r.status is not Status.NOT_GRADED]


def common_mistakes(results: ClassResults, assignment: str) -> Counter[tuple[str, str]]:
    """Counter of (grade_id, message) over the failed test cells of an assignment, stubs left aside."""
    return Counter((c.grade_id, c.message) for r in _graded(results) if r.assignment == assignment
                   for c in r.cells if c.outcome is not Outcome.PASSED and c.outcome not in NOT_TRIED and c.message)


def misconception_cells(results: ClassResults) -> defaultdict[tuple[str, str, str], list[str]]:
    """{(misconception id, assignment, student): [grade_ids of the failed cells where it was recognised]}."""
    found: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in _graded(results):
        for c in r.cells:
            if c.misconception and c.score < c.max_score:
                found[(c.misconception, r.assignment, r.student_id)].append(c.grade_id)
    return found


def book_labels(source: str | os.PathLike[str] = BOOK_SOURCE) -> dict[str, str]:
    """{explicit MyST label: the built page that defines it, relative to the book's root, without .html}."""
    labels = {}
    for page in sorted(Path(source).glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("(") and line.rstrip().endswith(")=") and " " not in line.strip():
                labels[line.strip()[1:-2]] = page.relative_to(REPO).with_suffix("").as_posix()
    return labels


def book_link(label: str, book_url: str | None = None, labels: Mapping[str, str] | None = None,
              edition: Edition = Edition.EN) -> str:
    """The address of the book section with this label in `edition` ("" if the book has no such label): the
    Chinese edition's pages are the English ones' under zh/ (book/01_attention -> zh/book/01_attention)."""
    labels = book_labels() if labels is None else labels
    if label not in labels:
        return ""
    base = (book_url or BUILT_BOOK.as_uri()).rstrip("/")
    page = labels[label] if edition is Edition.EN else f"{edition.value}/{labels[label]}"
    return f"{base}/{page}.html#{label}"


class _Tally(TypedDict):
    """What the class did of one misconception."""
    students: set[str]
    cells: Counter[str]       # grade_id -> students whose cell failed with it
    assignments: set[str]


def _misconception_section(results: ClassResults, book_url: str | None, edition: Edition = Edition.EN) -> str:
    """The class's mistakes by misconception, grouped across components and assignments by the kind of
    mistake (the part of the id after its component's prefix: `sdpa.mask-inverted` and `mha.mask-inverted`
    are one kind), the kinds made by most students first."""
    by_id: defaultdict[str, _Tally] = defaultdict(lambda: {"students": set(), "cells": Counter(), "assignments": set()})
    for (key, assignment, student), grade_ids in misconception_cells(results).items():
        entry = by_id[key]
        entry["students"].add(student)
        entry["assignments"].add(assignment)
        entry["cells"].update(grade_ids)
    parts = [f"<h2>{say(edition, 'Mistakes of the class, by misconception')}</h2>",
             "<p>" + say(edition, "Each failed test cell whose component the grader's checks recognised as a known "
                                  "mistake, across all assignments, grouped by the kind of mistake (the same mistake "
                                  "in another component or assignment). The link goes to the section of the book "
                                  "that teaches it.") + "</p>"]
    if not by_id:
        return "".join(parts) + f"<p>{say(edition, 'None recognised.')}</p>"
    kinds: defaultdict[str, list[str]] = defaultdict(list)
    for key in by_id:
        kinds[mistake_kind(key)].append(key)
    students_of = {kind: set().union(*(by_id[k]["students"] for k in keys)) for kind, keys in kinds.items()}
    labels = book_labels()
    rows: list[str] = []
    for kind in sorted(kinds, key=lambda kind: (-len(students_of[kind]), kind)):
        keys = sorted(kinds[kind], key=lambda key: (-len(by_id[key]["students"]), key))
        for n, key in enumerate(keys):
            entry, known = by_id[key], results.misconceptions.get(key)
            mistake, fix = editions.mistake_in(edition, known.assignment, key, known.mistake, known.fix) \
                if known else (key, "")
            link = book_link(known.label, book_url, labels, edition) if known else ""
            cells = ", ".join(f"{html.escape(g)} ({count})" for g, count in entry["cells"].most_common())
            section = f'<a href="{html.escape(link)}">{html.escape(known.label)}</a>' if link and known else ""
            first = (f"<td rowspan='{len(keys)}'><strong>{html.escape(kind)}</strong><br>"
                     f"{say(edition, '{count} students', count=len(students_of[kind]))}</td>") if n == 0 else ""
            rows.append("<tr>" + first + "".join(f"<td>{c}</td>" for c in [
                f"<strong>{html.escape(mistake)}</strong><br><code>{html.escape(key)}</code>",
                html.escape(", ".join(sorted(entry["assignments"]))), str(len(entry["students"])), cells,
                html.escape(fix), section]) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in [
        say(edition, "kind of mistake"), say(edition, "misconception"), say(edition, "assignment"),
        say(edition, "students"), say(edition, "cells (students)"), say(edition, "fix"), say(edition, "book section")])
    return "".join(parts) + f"<table class='misconceptions'><tr>{head}</tr>{''.join(rows)}</table>"


def mistake_kind(key: str) -> str:
    """The kind of mistake of a misconception id `<component>.<mistake>`: its <mistake> part."""
    return key.split(".", 1)[-1]


def _component_rates(results: ClassResults, assignment: str,
                     submissions: Iterable[SubmissionResult]) -> list[tuple[str, float]]:
    """[(component, % of students with full points on all its cells)] in notebook order."""
    owner = results.components.get(assignment, {})
    passed: defaultdict[str, list[bool]] = defaultdict(list)
    for r in submissions:
        full: defaultdict[str, bool] = defaultdict(lambda: True)
        for c in r.cells:
            full[owner.get(c.grade_id, c.grade_id)] &= c.score >= c.max_score
        for component, ok in full.items():
            passed[component].append(ok)
    return [(component, 100 * sum(v) / len(v)) for component, v in passed.items()]


def _needing_help(results: ClassResults, assignment: str,
                  submissions: Iterable[SubmissionResult]) -> list[tuple[str, str, str, str]]:
    """Rows (student, score, parts not attempted, mistakes recognised) of the lowest scores, lowest first."""
    owner = results.components.get(assignment, {})
    rows = []
    for r in sorted(submissions, key=lambda r: (r.score, r.student_id))[:HELP_LIMIT]:
        if r.score >= r.max_score:
            break
        untouched = sorted({owner.get(c.grade_id, c.grade_id) for c in r.cells if c.outcome in NOT_TRIED})
        mistakes = sorted({c.misconception for c in r.cells if c.misconception})
        rows.append((r.student_id, f"{r.score:g} / {r.max_score:g}", ", ".join(untouched) or "-", ", ".join(mistakes) or "-"))
    return rows


LANGUAGE_TAGS = {Edition.EN: "en", Edition.ZH: "zh-CN"}   # <html lang> of report.html (the English page has none)


def report_html(results: ClassResults, errors: Sequence[ReasonRow], flags: Sequence[ReasonRow],
                book_url: str | None = None, edition: Edition = Edition.EN) -> str:
    """The class report, in `edition`: its texts are say()'s templates (the project's own text, written as it
    is), what comes from the students and the results is escaped."""
    graded = _graded(results)
    title = say(edition, "Grading report")
    parts = [f"<h1>{title}</h1>",
             "<p>" + say(edition, "{students} students, {submissions} submissions, {not_graded} not graded, "
                                  "{errors} errors, {flags} flags.",
                         students=len({r.student_id for r in results.submissions}),
                         submissions=len(results.submissions), not_graded=len(results.not_graded),
                         errors=len(errors), flags=len(flags)) + "</p>"]
    if results.not_graded:
        count = say(edition, "{count} submissions were not graded", count=len(results.not_graded))
        parts.append(f"<p><strong>{count}</strong>" + say(edition, " (a failure of the grader, not of the students): "
                                                                    "run the same command again to grade them.") + "</p>")
    parts.append(_misconception_section(results, book_url, edition))
    by_assignment: defaultdict[str, list[SubmissionResult]] = defaultdict(list)
    for r in graded:
        by_assignment[r.assignment].append(r)
    for assignment, submissions in sorted(by_assignment.items()):
        top = max(r.max_score for r in submissions)
        scores = [r.score for r in submissions]
        mean = sum(scores) / len(scores)
        summary = say(edition, "mean {mean} / {top}, {full} of {count} with full marks", mean=f"{mean:.1f}",
                      top=f"{top:g}", full=sum(s >= top for s in scores), count=len(scores))
        parts.append(f"<h2>{html.escape(assignment)}</h2><p>{summary}</p>")
        parts.append(f"<h3>{say(edition, 'Score distribution')}</h3>")
        parts.append(histogram(scores, top, say(edition, "{assignment}: score distribution", assignment=assignment),
                               say(edition, "score"), say(edition, "students")))
        cells: defaultdict[str, list[bool]] = defaultdict(list)
        for r in submissions:
            for c in r.cells:
                cells[c.grade_id].append(c.score >= c.max_score)
        names = list(cells)
        rates = [100 * sum(v) / len(v) for v in cells.values()]
        parts.append(f"<h3>{say(edition, 'Pass rate per graded test cell')}</h3>")
        parts.append(bar_chart(names, rates, say(edition, "pass rate per graded test cell"),
                               say(edition, "% of students with full points"), "#1f77b4"))
        components = _component_rates(results, assignment, submissions)
        parts.append(f"<h3>{say(edition, 'Pass rate per component')}</h3>")
        parts.append(bar_chart([c for c, _ in components], [r for _, r in components],
                               say(edition, "pass rate per component"),
                               say(edition, "% of students with full points on all its cells"), "#2ca02c"))
        mistakes = common_mistakes(results, assignment)
        parts.append(f"<h3>{say(edition, 'Most common test messages')}</h3>")
        parts.append(_table([say(edition, "test cell"), say(edition, "students"), say(edition, "message")],
                            [(g, n, m) for (g, m), n in mistakes.most_common(15)], edition))
        parts.append(f"<h3>{say(edition, 'Students who need help')}</h3><p>"
                     + say(edition, "The lowest scores, with the parts not attempted and the mistakes recognised.")
                     + "</p>")
        parts.append(_table([say(edition, "student"), say(edition, "score"), say(edition, "not attempted"),
                             say(edition, "mistakes")], _needing_help(results, assignment, submissions), edition))
    reasons = [say(edition, "student"), say(edition, "assignment"), say(edition, "reason")]
    parts.append(similarity_section(results.similar, edition))
    parts.append(late_section(adjustments(results), edition))
    parts.append(overrides_section(adjustments(results), edition))
    parts.append(f"<h2>{say(edition, 'Errors and submissions not graded')}</h2>" + _table(reasons, errors, edition))
    parts.append(f"<h2>{say(edition, 'Flags (graded, but a person should look)')}</h2>" + _table(reasons, flags, edition))
    style = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top;font-size:.92em}"
             "code{word-break:break-all}svg{max-width:100%;height:auto}")
    lang = "" if edition is Edition.EN else f" lang='{LANGUAGE_TAGS[edition]}'"
    return f"<!DOCTYPE html><html{lang}><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>" \
           f"<body>{''.join(parts)}</body></html>"


# --- the instructor's word (autograder/policy.py applies it; this lists it) ------------------------------------
def late_section(adjusted: ClassAdjustments, edition: Edition = Edition.EN) -> str:
    """The report's section on deadlines: the rule, then every submission that was late, handed in at an unknown
    time, within the grace period or given an extension, and the extensions that applied to nothing."""
    rules = adjusted.rules
    parts = [f"<h2>{say(edition, 'Deadlines and late work')}</h2>"]
    if not rules.deadlines:
        return "".join(parts) + f"<p>{say(edition, 'No deadline was given (--policy).')}</p>"
    deadlines = ", ".join(f"{a}: {policy.shown(d)}" for a, d in sorted(rules.deadlines.items()))
    parts.append("<p>" + html.escape(say(edition, "Deadlines: {deadlines}. Late penalty: {rule}.", deadlines=deadlines,
                                         rule=rules.penalty.describe(edition))) + "</p>")
    listed = [a for a in adjusted.submissions.values() if a.timing in (Timing.LATE, Timing.TIME_UNKNOWN)
              or a.extension is not None or (a.timing is Timing.ON_TIME and a.late_by > timedelta(0))]
    count = Counter(a.timing for a in adjusted.submissions.values())
    parts.append("<p>" + say(edition, "{late} late, {unknown} handed in at a time not known (not penalised, flagged), "
                                      "{extended} with an extension.", late=count[Timing.LATE],
                             unknown=count[Timing.TIME_UNKNOWN],
                             extended=sum(a.extension is not None for a in adjusted.submissions.values())) + "</p>")
    rows = []
    for a in sorted(listed, key=lambda a: (a.assignment, a.student_id)):
        when = a.submitted.when if a.submitted is not None else None
        handed = f"{policy.shown(when, a.zone)} ({a.submitted.source})" if when is not None and a.submitted else \
            say(edition, "unknown: {problem}", problem=a.submitted.problem if a.submitted else "")
        extension = f"{a.extension.describe(edition)}: {a.extension.reason}" if a.extension is not None else "-"
        late = policy.duration(a.late_by, edition) if when is not None and a.late_by > timedelta(0) else "-"
        penalty = say(edition, "{share}%: -{points}", share=f"{a.share * 100:g}", points=_optional(a.penalty_points)) \
            if a.timing is Timing.LATE else say(edition, "none")
        score = f"{_optional(a.raw_score)} → {_optional(a.final_score)} / {_points(a.max_score)}"
        rows.append((a.student_id, a.assignment, handed, policy.shown(a.deadline) if a.deadline else "-", extension,
                     late, penalty, score))
    parts.append(_table([say(edition, "student"), say(edition, "assignment"), say(edition, "handed in"),
                         say(edition, "deadline"), say(edition, "extension"), say(edition, "late by"),
                         say(edition, "penalty"), say(edition, "score (with overrides → final)")], rows, edition))
    if adjusted.unused_extensions:
        parts.append("<p>" + say(edition, "Extensions that applied to no submission of this grading:") + "</p>")
        parts.append(_table([say(edition, "student"), say(edition, "assignment"), say(edition, "extension"),
                             say(edition, "reason")],
                            [(e.student_id, e.assignment, e.describe(edition), e.reason) for e in adjusted.unused_extensions],
                            edition))
    return "".join(parts)


def overrides_section(adjusted: ClassAdjustments, edition: Edition = Edition.EN) -> str:
    """The report's section on the instructor's overrides: every line of the file, with what became of it."""
    parts = [f"<h2>{say(edition, 'Overrides by the instructor')}</h2>"]
    if not adjusted.overrides:
        return "".join(parts) + f"<p>{say(edition, 'None (--overrides).')}</p>"
    applied = sum(o.applied is Applied.APPLIED for o in adjusted.overrides)
    parts.append("<p>" + say(edition, "{applied} of {count} applied; the others are listed with the reason, and in "
                                      "flags.csv.", applied=applied, count=len(adjusted.overrides)) + "</p>")
    rows = [(o.override.line, o.override.student_id, o.override.assignment, o.override.grade_id,
             _optional(o.tests) + (f" / {_points(o.max_score)}" if o.max_score is not None else ""),
             _points(o.override.points), o.override.reason,
             say(edition, "applied") if o.applied is Applied.APPLIED else say(edition, "NOT applied: {detail}", detail=o.detail))
            for o in adjusted.overrides]
    parts.append(_table([say(edition, "line"), say(edition, "student"), say(edition, "assignment"),
                         say(edition, "test cell"), say(edition, "the tests gave"), say(edition, "points"),
                         say(edition, "reason"), say(edition, "outcome")], rows, edition))
    return "".join(parts)


# --- possibly copied work (autograder/similarity.py finds the pairs; this renders them) -----------------------
MAX_LISTED = 200     # pairs in report.html's table (similarity.csv has every pair)
MAX_SHOWN = 30       # pairs whose matching regions report.html shows

def _utf8(value: object) -> str:
    """Text that UTF-8 can write (a lone surrogate from a broken notebook becomes U+FFFD)."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


SIMILARITY_HEADER = ["assignment", "student_a", "student_b", "score", "share_a", "share_b"]


def similarity_rows(pairs: Iterable[Pair]) -> list[tuple[str, str, str, str, str, str]]:
    """The rows of OUT/similarity.csv: one per pair (autograder/similarity.py finds them)."""
    return [(_utf8(p.assignment), _utf8(p.student_a), _utf8(p.student_b), f"{p.score:.3f}", f"{p.share_a:.3f}",
             f"{p.share_b:.3f}") for p in pairs]


def similarity_section(pairs: Sequence[Pair], edition: Edition = Edition.EN) -> str:
    """The report's section on possibly copied work: the pairs (the first MAX_LISTED), and the matching
    regions of the first MAX_SHOWN side by side; similarity.csv lists every pair."""
    def e(value: object) -> str:
        return html.escape(_utf8(value))
    parts = [f"<h2>{say(edition, 'Possibly copied work')}</h2>",
             "<p>" + say(edition, "Pairs of submissions of the same assignment whose own code (stubs, pasted helpers "
                                  "and the book's code removed; names, comments, whitespace and order ignored) is "
                                  "much alike. A pair is a reason to look, never a proof: independent solutions of "
                                  "short functions can be alike. The score is the smaller of the two shares of each "
                                  "one's code found in the other; pairs from {threshold} are listed.",
                         threshold=f"{similarity.THRESHOLD:g}") + "</p>"]
    if not pairs:
        return "".join(parts) + f"<p>{say(edition, 'None.')}</p>"
    if len(pairs) > MAX_LISTED:
        parts.append("<p>" + say(edition, "{count} pairs: the {listed} highest are listed here, every one in "
                                          "similarity.csv.", count=len(pairs), listed=MAX_LISTED) + "</p>")
    rows = "".join(f"<tr><td>{e(p.assignment)}</td><td>{e(p.student_a)}</td><td>{e(p.student_b)}</td>"
                   f"<td>{p.score:.2f}</td><td>{p.share_a:.2f}</td><td>{p.share_b:.2f}</td></tr>"
                   for p in pairs[:MAX_LISTED])
    head = "".join(f"<th>{h}</th>" for h in [
        say(edition, "assignment"), say(edition, "student A"), say(edition, "student B"), say(edition, "score"),
        say(edition, "share of A in B"), say(edition, "share of B in A")])
    parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    if len(pairs) > MAX_SHOWN:
        parts.append("<p>" + say(edition, "The matching code of the {count} highest pairs:", count=MAX_SHOWN) + "</p>")
    for p in pairs[:MAX_SHOWN]:
        parts.append("<h3>" + say(edition, "{assignment}: {a} and {b} ({score})", assignment=e(p.assignment),
                                  a=e(p.student_a), b=e(p.student_b), score=f"{p.score:.2f}") + "</h3>")
        for code_a, code_b in p.regions:
            parts.append("<table class='similar'><tr>"
                         f"<th>{e(p.student_a)}</th><th>{e(p.student_b)}</th></tr><tr>"
                         f"<td><pre>{e(code_a)}</pre></td><td><pre>{e(code_b)}</pre></td></tr></table>")
    return "".join(parts)
