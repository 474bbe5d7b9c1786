"""Memory is measured from outside the kernel: a notebook whose online softmax holds every score of a query row (the
queries cut into chunks) and which falsifies the kernel's own count of live tensors, by three different means, still
loses the memory points (the grader reads the kernel's memory cgroup around the call) and is flagged for a person.
"""
import nbformat
import pytest

from autograder import sandbox
from tests.conftest import read_csv, run_grader, with_cell_replaced
from tests.mutants import catalogue

ASSIGNMENT = "05_attention_at_scale"


def _has_memory_cgroup():
    if sandbox.unavailable():
        return False
    probe = sandbox.KernelCgroup.make()
    meter = probe.memory_meter() if probe else None
    if probe:
        probe.remove()
    if meter is not None:
        meter.close()
    return meter is not None


pytestmark = pytest.mark.skipif(not _has_memory_cgroup(),
                                reason="the grader gets no memory cgroup on this machine: memory is counted in the kernel")

FAKES = {   # ways a student's code can make the kernel's own count of live tensors read (almost) nothing
    "storage-sizes": "import torch\ntorch.UntypedStorage.nbytes = lambda self: 0\n",
    "dispatch-mode": ("import torch.utils._python_dispatch as _d\n"
                      "class _Deaf:\n"
                      "    def __init__(self, *args, **kwargs):\n"
                      "        pass\n"
                      "    def __enter__(self):\n"
                      "        return self\n"
                      "    def __exit__(self, *args):\n"
                      "        return False\n"
                      "_d.TorchDispatchMode = _Deaf\n"),
    "tree-leaves": "import torch.utils._pytree as _p\n_p.tree_leaves = lambda *args, **kwargs: []\n",
}


def test_a_kernel_that_fakes_its_memory_count_still_loses_the_memory_points(tmp_path):
    mutant = catalogue()[ASSIGNMENT]["online_softmax/query_chunks"]
    for name, fake in FAKES.items():
        folder = tmp_path / "submissions" / name / ASSIGNMENT
        folder.mkdir(parents=True)
        notebook = with_cell_replaced(ASSIGNMENT, mutant.cell, fake + mutant.source)
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    out = tmp_path / "out"
    process = run_grader(tmp_path / "submissions", out, 1)
    assert process.returncode == 0, process.stderr[-2000:]
    scores = {r["student_id"]: float(r["score"]) for r in read_csv(out / "tests.csv")
              if r["grade_id"] == "online_softmax_memory"}
    assert scores == {name: 0.0 for name in FAKES}, scores
    flagged = {r["student_id"] for r in read_csv(out / "flags.csv") if "memory cgroup" in r["reason"]}
    assert flagged == set(FAKES), f"not flagged: {sorted(set(FAKES) - flagged)}"
