"""`make bench`: the course's timings on this machine.

Prints the full book build time (fresh output folder, nothing cached), the no-change rebuild time,
and the grading time per submission for N copies of the solution with --workers 1 and --workers 2.
Usage: python tests/bench.py [--copies N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="submissions to grade (default: %(default)s)")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        book = [str(bin_dir / "jupyter-book"), "build", ".", "--builder", "html", "-W", "-n", "--keep-going",
                "--path-output", str(tmp / "book")]
        rows.append(("book: full build (nothing cached)", timed(book), ""))
        rows.append(("book: rebuild with no change", timed(book), ""))

        assignments = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
        submissions = tmp / "submitted"
        for i in range(args.copies):
            for assignment in assignments:
                folder = submissions / f"student{i:03d}" / assignment
                folder.mkdir(parents=True)
                shutil.copy(REPO / "solutions" / assignment / f"{assignment}.ipynb", folder)
        count = args.copies * len(assignments)
        for workers in (1, 2):
            seconds = timed([sys.executable, "-m", "autograder", "grade", str(submissions),
                             "--out", str(tmp / f"out{workers}"), "--workers", str(workers), "--quiet"])
            rows.append((f"grading {count} submissions, --workers {workers}", seconds,
                         f"{seconds / count:.2f} s per submission"))
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for what, seconds, note in rows:
        print(f"{what:<45} {seconds:7.1f} s   {note}")


if __name__ == "__main__":
    main()
