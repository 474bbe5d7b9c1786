"""Write the results of a grading run to OUT/.

grades.csv, tests.csv, errors.csv, flags.csv (the autograder contract), gradebook.csv (one row per
student, one column per assignment: the layout LMS gradebooks import), and report.html: the score
distribution per assignment, the pass rate of every graded test cell, the most common mistakes (the
messages of failed tests), and the error and flag lists.
"""
import base64
import csv
import html
import io
from collections import Counter, defaultdict
from pathlib import Path


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _points(x):
    return f"{x:g}"


def write_report(results, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "grades.csv", ["student_id", "assignment", "score", "max_score"],
           [(s, a, _points(score), _points(top)) for s, a, score, top in results.grades])
    _write(out / "tests.csv", ["student_id", "assignment", "grade_id", "score", "max_score"],
           [(s, a, g, _points(score), _points(top)) for s, a, g, score, top, _ in results.tests])
    _write(out / "errors.csv", ["student_id", "assignment", "reason"], results.errors)
    _write(out / "flags.csv", ["student_id", "assignment", "reason"], results.flags)
    _write_gradebook(results, out / "gradebook.csv")
    (out / "report.html").write_text(report_html(results), encoding="utf-8")


def _write_gradebook(results, path):
    assignments = sorted({a for _, a, _, _ in results.grades})
    top = {a: m for _, a, _, m in results.grades}
    scores = defaultdict(dict)
    for student, assignment, score, _ in results.grades:
        scores[student][assignment] = score
    header = ["Student ID"] + [f"{a} [{_points(top[a])}]" for a in assignments] + [f"Total [{_points(sum(top.values()))}]"]
    rows = [[s] + [_points(scores[s].get(a, 0)) for a in assignments] + [_points(sum(scores[s].values()))]
            for s in sorted(scores)]
    _write(path, header, rows)


def _figure(draw, width=7, height=2.6):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(width, height))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>None.</p>"


NOT_ATTEMPTED = ("NotImplementedError", "NotExecuted")


def common_mistakes(results, assignment):
    """Counter of (grade_id, message) over the failed test cells of an assignment, stubs left aside."""
    return Counter((g, m) for _, a, g, s, t, m in results.tests
                   if a == assignment and s < t and m and not m.startswith(NOT_ATTEMPTED))


def report_html(results):
    parts = ["<h1>Grading report</h1>",
             f"<p>{len({s for s, *_ in results.grades})} students, {len(results.grades)} submissions, "
             f"{len(results.errors)} errors, {len(results.flags)} flags.</p>"]
    by_assignment = defaultdict(list)
    for _, assignment, score, top in results.grades:
        by_assignment[assignment].append((score, top))
    for assignment, pairs in sorted(by_assignment.items()):
        top = max(t for _, t in pairs)
        scores = [s for s, _ in pairs]
        mean = sum(scores) / len(scores)
        parts.append(f"<h2>{html.escape(assignment)}</h2><p>mean {mean:.1f} / {top:g}, "
                     f"{sum(s >= top for s in scores)} of {len(scores)} with full marks</p>")
        parts.append("<h3>Score distribution</h3>")
        parts.append(_figure(lambda ax: (ax.hist(scores, bins=min(20, int(top) + 1), range=(0, top)),
                                         ax.set_xlabel("score"), ax.set_ylabel("students"),
                                         ax.set_title(f"{assignment}: score distribution"))))
        cells = defaultdict(list)
        for _, a, grade_id, score, cell_top, _ in results.tests:
            if a == assignment:
                cells[grade_id].append(score >= cell_top)
        names = list(cells)
        rates = [100 * sum(v) / len(v) for v in cells.values()]
        parts.append("<h3>Pass rate per graded test cell</h3>")
        parts.append(_figure(lambda ax: (ax.barh(names[::-1], rates[::-1]), ax.set_xlim(0, 100),
                                         ax.set_xlabel("% of students with full points"),
                                         ax.set_title("pass rate per graded test cell")),
                             height=0.3 * len(names) + 1.2))
        mistakes = common_mistakes(results, assignment)
        parts.append("<h3>Most common mistakes</h3>")
        parts.append(_table(["test cell", "students", "message"], [(g, n, m) for (g, m), n in mistakes.most_common(15)]))
    parts.append("<h2>Errors (scored 0)</h2>" + _table(["student", "assignment", "reason"], results.errors))
    parts.append("<h2>Flags (graded, but a person should look)</h2>" + _table(["student", "assignment", "reason"], results.flags))
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}")
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grading report</title><style>{style}</style></head>" \
           f"<body>{''.join(parts)}</body></html>"
