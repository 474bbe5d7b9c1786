"""`make bench`: the course's timings on this machine.

1. the book: a full build (fresh output folder, nothing cached) and a rebuild with no change;
2. the floor of grading one notebook: one fresh kernel running the 01_attention solution with nbclient;
3. the machine's own ceiling for parallel work: one CPU-bound loop per core at once, against one alone;
4. grading the same N submissions (copies of the 01_attention solution; `make bench N=...`, 40 by
   default) four ways, in one run: plain serial `nbgrader autograde`, then `python -m autograder grade` with
   --workers 1 (kernels forked by the worker's zygote), --workers 1 --fresh-kernels and --workers <cores>
   (sandboxed, with feedback and canaries), sampling the resident memory of every process of the grader.
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
sys.path.insert(0, str(REPO))
from tests.proctree import descendants  # noqa: E402
ASSIGNMENT = "01_attention"


def timed(command, **kwargs):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def kernel_floor(repeats=3):
    """Median seconds for one fresh kernel to run the solution notebook (nbclient, no sandbox, no grading; its
    test cells that need the grader fail, which takes no time)."""
    times = []
    for _ in range(repeats):
        notebook = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, kernel_name="python3", allow_errors=True).execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class MemorySampler:
    """The largest resident memory of each process under `pid` (the grader, its workers, zygotes, kernels),
    sampled every 0.2 s while a grading runs, by kind."""

    def __init__(self, pid):
        import threading
        self.pid, self.peaks, self.done = pid, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.2):
            for pid in [self.pid] + descendants(self.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
                name = next((line.split()[1] for line in status.splitlines() if line.startswith("Name:")), "")
                kind = ("zygote" if "autograder/zygote.py" in command and name != "ag-kernel" else
                        "kernel" if name == "ag-kernel" or "ipykernel_launcher" in command else
                        "worker" if "multiprocessing" in command or "forkserver" in command else
                        "main" if pid == self.pid else "other")
                self.peaks[kind] = max(self.peaks.get(kind, 0), rss)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peaks


def timed_grading(command, **kwargs):
    """Seconds of one `python -m autograder grade`, and the peak resident memory of its processes by kind."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    sampler = MemorySampler(process.pid)
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return time.perf_counter() - start, sampler.stop()


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
        rows.append(("floor: one fresh kernel runs the solution notebook (nbclient)", floor, "per submission"))

        cores = os.cpu_count() or 1
        ceiling = parallel_ceiling(cores)

        n = args.copies
        submissions = tmp / "submitted"
        for i in range(n):
            folder = submissions / f"student{i:03d}" / ASSIGNMENT
            folder.mkdir(parents=True)
            shutil.copy(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder)

        # Plain nbgrader: a course built from solutions/ by the same code, then one serial autograde.
        from autograder.course import build_course
        course = build_course(tmp / "plain", only={ASSIGNMENT})
        shutil.copytree(submissions, course / "submitted")
        shutil.copy(course / "gradebook.db", tmp / "plain-gradebook.db")
        # Each round grades the same class three ways, back to back; the ratios are taken within a round
        # (the machine's load drifts between rounds), and the medians over rounds are reported.
        rounds, memory = [], {}
        for r in range(args.repeats):
            shutil.rmtree(course / "autograded", ignore_errors=True)
            (course / "gradebook.db").unlink(missing_ok=True)
            shutil.copy(tmp / "plain-gradebook.db", course / "gradebook.db")
            plain = timed([str(bin_dir / "nbgrader"), "autograde", ASSIGNMENT, "--force",
                           "--CourseDirectory.root=" + str(course), "--CourseDirectory.source_directory=source",
                           "--CourseDirectory.release_directory=release",
                           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"], cwd=tmp, env=env)
            ours = {}
            for workers, extra in [(1, []), (1, ["--fresh-kernels"])] + ([(cores, [])] if cores > 1 else []):
                label = f"{workers}{' fresh' if extra else ''}"
                ours[label], peaks = timed_grading(
                    [sys.executable, "-m", "autograder", "grade", str(submissions), "--out",
                     str(tmp / f"out{label.replace(' ', '-')}-{r}"), "--workers", str(workers), "--quiet"] + extra,
                    cwd=REPO, env=env)
                for kind, peak in peaks.items():
                    memory[(label, kind)] = max(memory.get((label, kind), 0), peak)
            rounds.append((plain, ours))
        plain = statistics.median(p for p, _ in rounds)
        rows.append((f"plain serial nbgrader autograde, {n} submissions", plain,
                     f"{plain / n:.2f} s per submission (median of {len(rounds)})"))
        for label in rounds[0][1]:
            seconds = statistics.median(o[label] for _, o in rounds)
            ratio = statistics.median(p / o[label] for p, o in rounds)
            workers, fresh = label.split(" ")[0], " --fresh-kernels" if "fresh" in label else ""
            rows.append((f"python -m autograder grade --workers {workers}{fresh}, {n} submissions", seconds,
                         f"{seconds / n:.2f} s per submission, {ratio:.2f}x plain nbgrader (median of {len(rounds)})"))
        ours = {label: statistics.median(o[label] for _, o in rounds) for label in rounds[0][1]}
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for what, seconds, note in rows:
        print(f"{what:<60} {seconds:7.1f} s   {note}")
    per_submission = ours["1"] / n
    print(f"--workers 1: {per_submission:.2f} s per submission, {per_submission / floor:.2f}x the floor and "
          f"{ours['1'] / ours['1 fresh']:.2f}x the same grader with --fresh-kernels")
    if cores > 1:
        print(f"speed-up of --workers {cores} over --workers 1: {ours['1'] / ours[str(cores)]:.2f}x; the machine's "
              f"ceiling ({cores} CPU-bound processes at once against one alone): {ceiling:.2f}x")
    for (label, kind), peak in sorted(memory.items()):
        if kind in ("main", "worker", "zygote", "kernel"):
            print(f"peak resident memory, --workers {label}, one {kind} process: {peak / 2**20:.0f} MiB")
    options = f"--copies {n} --repeats {args.repeats}" + (" --skip-book" if args.skip_book else "")
    print(f"make bench ({options}) took {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
