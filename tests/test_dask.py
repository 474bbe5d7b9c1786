"""The same grading command with its workers on a Dask cluster (a LocalCluster started here stands
for a real one): `python -m autograder grade ... --dask tcp://scheduler:8786`."""
import shutil

import nbformat

from tests.conftest import max_points, read_csv, run_grader, solution_path, with_cell_replaced
from tests.mutants import catalogue

ASSIGNMENT = "01_attention"


def test_grading_on_a_dask_cluster_gives_the_same_grades(tmp_path):
    from distributed import LocalCluster
    submitted = tmp_path / "submitted"
    for student in ("alice", "bob"):
        (submitted / student / ASSIGNMENT).mkdir(parents=True)
        shutil.copy(solution_path(ASSIGNMENT), submitted / student / ASSIGNMENT)
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]
    (submitted / "carol" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source),
                   submitted / "carol" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (submitted / "dave" / ASSIGNMENT).mkdir(parents=True)
    (submitted / "dave" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text("{ not json")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = run_grader(submitted, tmp_path / "dask", 2, "--dask", cluster.scheduler_address,
                             "--scratch", str(tmp_path))
    assert on_dask.returncode == 0, on_dask.stderr
    local = run_grader(submitted, tmp_path / "local", 2)
    assert local.returncode == 0, local.stderr
    for name in ("grades.csv", "tests.csv", "errors.csv"):
        assert read_csv(tmp_path / "dask" / name) == read_csv(tmp_path / "local" / name)
    grades = {r["student_id"]: float(r["score"]) for r in read_csv(tmp_path / "dask" / "grades.csv")}
    full = sum(max_points(ASSIGNMENT).values())
    assert grades["alice"] == grades["bob"] == full and 0 < grades["carol"] < full and grades["dave"] == 0
