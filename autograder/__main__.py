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
                       help="seconds one notebook may run before it scores 0 (default: %(default)s)")
    grade.add_argument("--cell-timeout", type=float, default=120,
                       help="seconds one cell may run before it fails (default: %(default)s)")
    grade.add_argument("--dask", metavar="ADDRESS",
                       help="run the workers on this Dask scheduler (tcp://host:8786) instead of local processes")
    grade.add_argument("--scratch", type=Path,
                       help="folder for the scratch course (with --dask: one every worker sees, e.g. shared storage)")
    grade.add_argument("--quiet", action="store_true", help="no progress line")
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="run student code without bubblewrap (only for code you trust)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"SUBMISSIONS must be a folder: {args.submissions} is not one")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    from autograder import sandbox
    if not sandbox.available() and not args.unsafe_no_sandbox:
        parser.error("bubblewrap (bwrap) is not installed, and student code must not run unsandboxed: "
                     "install it (apt-get install bubblewrap), or pass --unsafe-no-sandbox for code you trust")
    return args


def dask_executor(address):
    """A concurrent.futures executor on a Dask cluster (needs the `distributed` package)."""
    from distributed import Client
    client = Client(address)
    return client.get_executor


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    try:
        make_executor = dask_executor(args.dask) if args.dask else None
        results = grade_class(args.submissions, args.out, workers=args.workers, timeout=args.timeout,
                              cell_timeout=args.cell_timeout, progress=not args.quiet,
                              make_executor=make_executor, scratch=args.scratch)
        write_report(results, args.out)
    except Exception as error:
        print(f"autograder: could not grade: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"graded {len(results.grades)} submissions in {time.monotonic() - start:.1f} s "
          f"({len(results.errors)} with errors, {len(results.flags)} flags); results in {args.out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
