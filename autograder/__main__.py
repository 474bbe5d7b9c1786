"""Command line of the grader: python -m autograder grade SUBMISSIONS --out OUT [--workers N].

Exit status: 0 when every submission was graded, whatever the students did; 3 when the batch finished
but some submissions could not be graded because the grader failed (they are listed as "not graded",
never scored: run the same command again to grade exactly those); 130 when stopped by Ctrl-C or
SIGTERM (what was graded is kept); 2 for a bad command line; 1 when the grader itself could not run.
"""
import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from types import FrameType

from autograder.editions import Edition
from autograder.model import Limits
from autograder.pipeline import grade_class
from autograder.report import write_report

EXIT_NOT_GRADED, EXIT_INTERRUPTED = 3, 130


def seconds(text: str) -> float:
    """A limit in seconds: a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a limit must be a positive number of seconds")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade every submission under SUBMISSIONS")
    grade.add_argument("submissions", type=Path,
                       help="folder holding <student_id>/<assignment_id>/<assignment_id>.ipynb")
    grade.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    grade.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="submissions graded at the same time (default: every core, %(default)s here)")
    grade.add_argument("--timeout", type=seconds, default=Limits.notebook,
                       help="seconds one notebook may run before it scores 0 (default: %(default)g)")
    grade.add_argument("--cell-timeout", type=seconds, default=Limits.cell,
                       help="seconds one cell may run before it fails (default: %(default)g)")
    grade.add_argument("--regrade", action="store_true",
                       help="grade every submission again, even those whose earlier result in OUT still holds")
    grade.add_argument("--dask", metavar="ADDRESS",
                       help="run the workers on this Dask scheduler (tcp://host:8786) instead of local processes")
    grade.add_argument("--scratch", type=Path,
                       help="folder for the scratch course, created if missing "
                            "(with --dask: one every worker sees, e.g. shared storage)")
    grade.add_argument("--book-url", metavar="URL",
                       help="where report.html links to the book (default: this repository's _build/html)")
    grade.add_argument("--language", choices=[e.value for e in Edition], default=Edition.EN.value,
                       help="the language of report.html, for the instructor: its texts, the misconceptions and "
                            "the book it links to (default: %(default)s; the CSV files are the same in every one)")
    grade.add_argument("--quiet", action="store_true", help="no progress line")
    grade.add_argument("--fresh-kernels", action="store_true",
                       help="start a new kernel process for every notebook instead of forking it from the "
                            "worker's pre-warmed zygote (slower; the grades are the same)")
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="run student code without bubblewrap (only for code you trust)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"SUBMISSIONS must be a folder: {args.submissions} is not one")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.out.resolve() == args.submissions.resolve():
        parser.error("--out must not be the SUBMISSIONS folder itself (its results would look like students)")
    if args.scratch is not None and args.scratch.exists() and not args.scratch.is_dir():
        parser.error(f"--scratch must be a folder: {args.scratch} is a file")
    from autograder import sandbox
    reason = None if args.dask or args.unsafe_no_sandbox else sandbox.unavailable()
    if reason:
        parser.error(f"student code must not run unsandboxed, and this machine cannot sandbox it: {reason}; "
                     "run `make sandbox`, or pass --unsafe-no-sandbox for code you trust")
    return args


def dask_executor(address: str) -> Callable[[], Executor]:
    """A concurrent.futures executor on a Dask cluster (needs the `distributed` package)."""
    from distributed import Client
    client = Client(address)
    return client.get_executor


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops as cleanly as Ctrl-C does
    inside = args.out.resolve().is_relative_to(args.submissions.resolve())
    if inside:
        print(f"autograder: {args.out} lies inside SUBMISSIONS; it is skipped, not graded as a student", file=sys.stderr)
    try:
        make_executor = dask_executor(args.dask) if args.dask else None
        results = grade_class(args.submissions, args.out, workers=args.workers,
                              limits=Limits(args.timeout, args.cell_timeout), progress=not args.quiet,
                              make_executor=make_executor, scratch=args.scratch,
                              sandbox=not args.unsafe_no_sandbox, regrade=args.regrade,
                              fresh_kernels=args.fresh_kernels)
        write_report(results, args.out, book_url=args.book_url, edition=Edition(args.language))
    except KeyboardInterrupt:
        print(f"\nautograder: stopped. Every grade written so far is kept in {args.out}/results/; nothing in "
              f"flight was recorded. Run the same command again to grade the rest.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        print(f"autograder: could not grade: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if results.removed:
        print(f"autograder: OUT holds the class in SUBMISSIONS only: removed {len(results.removed)} files that an "
              f"earlier run wrote there (the feedback pages, results and kernel output of submissions that SUBMISSIONS "
              f"no longer holds; what a killed batch or an older grader left), such as {args.out / results.removed[0]}",
              file=sys.stderr)
    not_graded = len(results.not_graded)
    errors = sum(r.status.value == "student error" for r in results.submissions)
    print(f"graded {len(results.submissions) - not_graded} of {len(results.submissions)} submissions in "
          f"{time.monotonic() - start:.1f} s ({errors} with errors, "
          f"{sum(len(r.flags) for r in results.submissions)} flags); results in {args.out}/", file=sys.stderr)
    if not_graded:
        print(f"autograder: {not_graded} submissions were NOT GRADED because the grader failed (see errors.csv); "
              f"run the same command again to grade exactly those.", file=sys.stderr)
        return EXIT_NOT_GRADED
    return 0


if __name__ == "__main__":
    sys.exit(main())
