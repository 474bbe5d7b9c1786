"""Write the results of a grading run: OUT/grades.csv, OUT/tests.csv and OUT/errors.csv."""
import csv
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
           [(s, a, g, _points(score), _points(top)) for s, a, g, score, top in results.tests])
    _write(out / "errors.csv", ["student_id", "assignment", "reason"], results.errors)
