"""Command line of the grader: python -m autograder grade SUBMISSIONS --out OUT [--workers N] [--roster CSV].

Exit status: 0 when every submission was graded, whatever the students did; 3 when the batch finished
but some submissions could not be graded because the grader failed (they are listed as "not graded",
never scored: run the same command again to grade exactly those); 130 when stopped by Ctrl-C or
SIGTERM (what was graded is kept); 2 for a bad command line (an instructor's file that cannot be used included:
--policy, --times, --overrides and --roster are read before anything is graded), or SUBMISSIONS that cannot be read
or holds nothing to grade; 1 when the grader itself could not run.
"""
import argparse
import math
import os
import signal
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from types import FrameType

from autograder import course, policy
from autograder.editions import Edition
from autograder.intake import IntakeError, Layout
from autograder.lms import write_exports
from autograder.model import ClassResults, Limits
from autograder.pipeline import grade_class
from autograder.policy import Applied, PolicyError, Timing
from autograder.report import write_report
from autograder.roster import RosterError, read_roster

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
                       help="folder holding <student_id>/<assignment_id>/<assignment_id>.ipynb, or a class downloaded "
                            "from Canvas or Moodle as it comes (its zip, or the folder it unzips to)")
    grade.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    grade.add_argument("--roster", type=Path, metavar="CSV",
                       help="the class list (columns student_id, name, email, canvas_id, sis_user_id, sis_login_id, "
                            "section, idnumber): files are credited to its students, each of them is graded, and "
                            "OUT/lms/ gets the grades for Canvas's and Moodle's gradebook imports")
    grade.add_argument("--assignment", choices=course.assignments(), metavar="ID",
                       help="the assignment of an LMS's download whose file names do not say it")
    grade.add_argument("--canvas-assignment", action="append", default=[], metavar="ID=NUMBER",
                       help="Canvas's id of an assignment (the number in its address), for the column titles of "
                            "OUT/lms/canvas-grades.csv; may be repeated")
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
    grade.add_argument("--policy", type=Path, metavar="POLICY.yml",
                       help="deadlines (with a time zone), the late penalty and the students' extensions (README)")
    grade.add_argument("--times", type=Path, metavar="TIMES.csv",
                       help="student_id,assignment,submitted_at, or Moodle's grading worksheet of the assignment: "
                            "when each was handed in (default: the timestamp.txt nbgrader writes beside a submitted "
                            "notebook)")
    grade.add_argument("--overrides", type=Path, metavar="OVERRIDES.csv",
                       help="student_id,assignment,grade_id,points,reason: the instructor's points for a test cell, "
                            "applied at every grading")
    grade.add_argument("--quiet", action="store_true", help="no progress line")
    grade.add_argument("--fresh-kernels", action="store_true",
                       help="start a new kernel process for every notebook instead of forking it from the "
                            "worker's pre-warmed zygote (slower; the grades are the same)")
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="run student code without bubblewrap (only for code you trust)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir() and not (args.submissions.is_file() and zipfile.is_zipfile(args.submissions)):
        parser.error(f"SUBMISSIONS must be a folder or a zip file: {args.submissions} is "
                     f"{'a file, but not a zip' if args.submissions.is_file() else 'neither'}")
    args.canvas_ids = {}
    for pair in args.canvas_assignment:
        assignment, equals, number = pair.partition("=")
        if not equals or assignment not in course.assignments() or not number.isdigit():
            parser.error(f"--canvas-assignment {pair!r}: expected ID=NUMBER, an assignment of this course "
                         f"({', '.join(course.assignments())}) and Canvas's number for it")
        args.canvas_ids[assignment] = number
    try:
        args.roster = read_roster(args.roster) if args.roster is not None else None
    except RosterError as error:
        parser.error(f"--roster: {error}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.out.resolve() == args.submissions.resolve():
        parser.error("--out must not be the SUBMISSIONS folder itself (its results would look like students)")
    if args.scratch is not None and args.scratch.exists() and not args.scratch.is_dir():
        parser.error(f"--scratch must be a folder: {args.scratch} is a file")
    try:   # before anything is graded: a mistake in them must not cost a class's grading
        args.rules = policy.load_rules(args.policy, args.times, args.overrides, course.assignments(), args.roster,
                                       args.assignment)
    except PolicyError as error:
        parser.error(str(error))
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


def say_intake(results: ClassResults, lms: Path | None) -> None:
    """Tell the instructor, on stderr, how SUBMISSIONS was read: what matched no roster student, which roster
    students handed in nothing, where the LMS's files are."""
    intake = results.intake
    if intake is None:
        return
    for note in intake.notes:
        print(f"autograder: {note}", file=sys.stderr)
    if intake.layout is not Layout.NBGRADER:
        print(f"autograder: read {len(intake.submissions)} notebooks from {intake.layout.value}", file=sys.stderr)
    if intake.unmatched:
        print(f"autograder: {len(intake.unmatched)} files match no student of the roster (flags.csv, errors.csv):",
              file=sys.stderr)
        for line in intake.unmatched:
            print(f"  {line}", file=sys.stderr)
    if intake.absent:
        print(f"autograder: {len(intake.absent)} student{'s' * (len(intake.absent) != 1)} of the roster handed in "
              f"nothing (scored 0, errors.csv): "
              f"{', '.join(intake.absent)}", file=sys.stderr)
    if lms is not None:
        print(f"autograder: grades and feedback for the LMS in {lms}/", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops as cleanly as Ctrl-C does
    inside = args.out.resolve().is_relative_to(args.submissions.resolve())
    if inside:
        print(f"autograder: {args.out} lies inside SUBMISSIONS; it is skipped, not graded as a student", file=sys.stderr)
    for given in (args.policy, args.times, args.overrides):
        warning = policy.readable_by_others(given) if given is not None else None
        if warning:
            print(f"autograder: {warning}", file=sys.stderr)
    try:
        make_executor = dask_executor(args.dask) if args.dask else None
        results = grade_class(args.submissions, args.out, workers=args.workers,
                              limits=Limits(args.timeout, args.cell_timeout), progress=not args.quiet,
                              make_executor=make_executor, scratch=args.scratch,
                              sandbox=not args.unsafe_no_sandbox, regrade=args.regrade,
                              fresh_kernels=args.fresh_kernels, rules=args.rules, roster=args.roster,
                              assignment=args.assignment)
        write_report(results, args.out, book_url=args.book_url, edition=Edition(args.language))
        lms = write_exports(results, args.out, args.canvas_ids)
    except IntakeError as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
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
    if results.adjustments is not None:
        _say_adjustments(results.adjustments)
    say_intake(results, lms)
    if not_graded:
        print(f"autograder: {not_graded} submissions were NOT GRADED because the grader failed (see errors.csv); "
              f"run the same command again to grade exactly those.", file=sys.stderr)
        return EXIT_NOT_GRADED
    return 0


def _say_adjustments(adjusted: policy.ClassAdjustments) -> None:
    """One line on what the instructor's files did, and one per override that found nothing to apply to."""
    timings = [a.timing for a in adjusted.submissions.values()]
    if adjusted.rules.deadlines or adjusted.overrides:
        applied = sum(o.applied is Applied.APPLIED for o in adjusted.overrides)
        print(f"autograder: {timings.count(Timing.LATE)} late (penalised as the policy says), "
              f"{timings.count(Timing.TIME_UNKNOWN)} of unknown time (not penalised, flagged), {applied} of "
              f"{len(adjusted.overrides)} overrides applied (report.html lists them)", file=sys.stderr)
    unmatched = adjusted.unmatched_times()
    if unmatched:
        print(f"autograder: {len(unmatched)} rows of the Moodle worksheet match no submission (flags.csv):",
              file=sys.stderr)
        for who, _, why in unmatched:
            print(f"  {who}: {why}", file=sys.stderr)
    for o in adjusted.overrides:
        if o.applied is not Applied.APPLIED:
            print(f"autograder: override NOT applied, line {o.override.line} ({o.override.student_id}, "
                  f"{o.override.assignment}, {o.override.grade_id}): {o.detail}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
