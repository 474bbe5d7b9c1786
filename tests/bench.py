"""`make bench`: the course's timings on this machine.

1. the book: a full build (fresh output folder, nothing cached) and a rebuild with no change;
2. the floor of grading one notebook: starting a Python kernel and importing torch;
3. the machine's own ceiling for parallel work: one CPU-bound loop per core at once, against one alone;
4. grading the same N submissions (copies of the 01_attention solution; `make bench N=...`, 40 by
   default) three ways, in one run: plain serial `nbgrader autograde`, then `python -m autograder grade` with
   --workers 1 and --workers <cores> (sandboxed, with feedback and canaries).
Usage: python tests/bench.py [--copies N] [--repeats R] [--skip-book]; `make bench N=12 REPEATS=3 BOOK=no` is the
configuration of the README's table. The last line says how long the whole run took.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "01_attention"


def timed(command, **kwargs):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def kernel_floor(repeats=3):
    """Median seconds to start a kernel and import torch in it."""
    times = []
    for _ in range(repeats):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")])
        start = time.perf_counter()
        NotebookClient(notebook, kernel_name="python3").execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def busy_loop(_=None):
    start = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - start


def parallel_ceiling(workers, repeats=3):
    """How many times more CPU-bound work `workers` processes do at once than one process alone (medians)."""
    from concurrent.futures import ProcessPoolExecutor

    def median_seconds(n):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(busy_loop, range(n)))
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(busy_loop, range(workers)))  # start every worker first
        return workers * median_seconds(1) / median_seconds(workers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="submissions to grade (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the three gradings; medians are reported (default: %(default)s)")
    parser.add_argument("--skip-book", action="store_true", help="time the grading only")
    args = parser.parse_args()
    started = time.perf_counter()
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_book:
            book = [str(bin_dir / "jupyter-book"), "build", ".", "--builder", "html", "-W", "-n", "--keep-going",
                    "--path-output", str(tmp / "book")]
            rows.append(("book: full build (nothing cached)", timed(book, cwd=REPO, env=env), ""))
            rows.append(("book: rebuild with no change", timed(book, cwd=REPO, env=env), ""))

        floor = kernel_floor()
        rows.append(("floor: start a kernel and import torch", floor, "per submission"))

        cores = os.cpu_count() or 1
        ceiling = parallel_ceiling(cores)

        n = args.copies
        submissions = tmp / "submitted"
        for i in range(n):
            folder = submissions / f"student{i:03d}" / ASSIGNMENT
            folder.mkdir(parents=True)
            shutil.copy(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder)

        # Plain nbgrader: a course built from solutions/ by the same code, then one serial autograde.
        sys.path.insert(0, str(REPO))
        from autograder.course import build_course
        course = build_course(tmp / "plain", only={ASSIGNMENT})
        shutil.copytree(submissions, course / "submitted")
        shutil.copy(course / "gradebook.db", tmp / "plain-gradebook.db")
        # Each round grades the same class three ways, back to back; the ratios are taken within a round
        # (the machine's load drifts between rounds), and the medians over rounds are reported.
        rounds = []
        for r in range(args.repeats):
            shutil.rmtree(course / "autograded", ignore_errors=True)
            (course / "gradebook.db").unlink(missing_ok=True)
            shutil.copy(tmp / "plain-gradebook.db", course / "gradebook.db")
            plain = timed([str(bin_dir / "nbgrader"), "autograde", ASSIGNMENT, "--force",
                           "--CourseDirectory.root=" + str(course), "--CourseDirectory.source_directory=source",
                           "--CourseDirectory.release_directory=release",
                           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"], cwd=tmp, env=env)
            ours = {}
            for workers in sorted({1, cores}):
                ours[workers] = timed([sys.executable, "-m", "autograder", "grade", str(submissions),
                                       "--out", str(tmp / f"out{workers}-{r}"), "--workers", str(workers), "--quiet"],
                                      cwd=REPO, env=env)
            rounds.append((plain, ours))
        plain = statistics.median(p for p, _ in rounds)
        rows.append((f"plain serial nbgrader autograde, {n} submissions", plain,
                     f"{plain / n:.2f} s per submission (median of {len(rounds)})"))
        for workers in sorted({1, cores}):
            seconds = statistics.median(o[workers] for _, o in rounds)
            ratio = statistics.median(p / o[workers] for p, o in rounds)
            rows.append((f"python -m autograder grade --workers {workers}, {n} submissions", seconds,
                         f"{seconds / n:.2f} s per submission, {ratio:.2f}x plain nbgrader (median of {len(rounds)})"))
        ours = {w: statistics.median(o[w] for _, o in rounds) for w in sorted({1, cores})}
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for what, seconds, note in rows:
        print(f"{what:<60} {seconds:7.1f} s   {note}")
    print(f"speed-up of --workers {cores} over --workers 1: {ours[1] / ours[cores]:.2f}x; the machine's ceiling "
          f"({cores} CPU-bound processes at once against one alone): {ceiling:.2f}x")
    options = f"--copies {n} --repeats {args.repeats}" + (" --skip-book" if args.skip_book else "")
    print(f"make bench ({options}) took {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
