"""Command line of the grader: python -m autograder grade SUBMISSIONS --out OUT [--workers N].

Exit status 0 when the batch finished, whatever the students did; 2 for a bad command line;
1 when the grader itself could not run.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from autograder.pipeline import grade_class
from autograder.report import write_report


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade every submission under SUBMISSIONS")
    grade.add_argument("submissions", type=Path,
                       help="folder holding <student_id>/<assignment_id>/<assignment_id>.ipynb")
    grade.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    grade.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="submissions graded at the same time (default: every core, %(default)s here)")
    grade.add_argument("--timeout", type=float, default=600,
                       help="seconds one submission may take before it scores 0 (default: %(default)s)")
    grade.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"SUBMISSIONS must be a folder: {args.submissions} is not one")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    try:
        results = grade_class(args.submissions, workers=args.workers, timeout=args.timeout,
                              progress=not args.quiet)
        write_report(results, args.out)
    except Exception as error:
        print(f"autograder: could not grade: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"graded {len(results.grades)} submissions in {time.monotonic() - start:.1f} s "
          f"({len(results.errors)} with errors); results in {args.out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
