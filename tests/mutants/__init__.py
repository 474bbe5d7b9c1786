"""Catalogues of plausible wrong implementations, one module per assignment (tests/mutants/<id>.py).

Each module defines MUTANTS: a dict from a mutant's name to a Mutant, and MISCONCEPTION_OF: a dict from a
mutant's name to the id of its misconception (solutions/<id>/diagnostics.py), which the grader's feedback must
name (tests/test_diagnostics.py, tests/test_mutants.py), and FIXES: a dict from a mutant's name to an edit
(old, new) of its source that does what the feedback's advice says (`fix` of its misconception): the edited
cell must show no mistake (tests/test_diagnostics.py) and, for a sample, get full marks (tests/test_mutants.py). A mutant replaces the source of
one solution cell (by its nbgrader grade_id) in the solution notebook; tests/test_mutants.py grades
every mutant and checks that it loses points (and, where `fails` is given, on those test cells).
Every solution cell needs at least tests/test_mutants.py's MINIMUM_PER_COMPONENT mutants.
"""
from dataclasses import dataclass, field, replace
import importlib
import pkgutil


@dataclass(frozen=True)
class Mutant:
    cell: str                  # grade_id of the solution cell it replaces
    source: str                # the wrong implementation
    why: str                   # the mistake, in a student's words
    fails: tuple = field(default=())  # grade_ids of test cells that must not give full points
    misconception: str = ""    # the id (solutions/<id>/diagnostics.py) that the grader's feedback must name
    fix: tuple = ()            # (old, new): the edit of `source` that follows the feedback's advice

    @property
    def fixed_source(self):
        """The source with the advice followed (None when no fix is declared)."""
        if not self.fix:
            return None
        old, new = self.fix
        return self.source.replace(old, new) if old in self.source else None


def function_mutant(cell, signature, body, why, fails=(), misconception=""):
    """A mutant of the solution cell `cell`: the function `signature` with the given body."""
    return Mutant(cell=cell, source=f"def {signature}:\n" + body.strip("\n") + "\n", why=why, fails=tuple(fails),
                  misconception=misconception)


def module_mutant(cell, init_signature, init_body, forward_signature, forward_body, why, fails=(), misconception=""):
    """A mutant of the solution cell `cell` that defines the nn.Module of that name, with these bodies."""
    source = (f"class {cell}(nn.Module):\n"
              f"    def __init__(self, {init_signature}):\n"
              "        super().__init__()\n" + init_body.strip("\n") + "\n\n"
              f"    def forward(self, {forward_signature}):\n" + forward_body.strip("\n") + "\n")
    return Mutant(cell=cell, source=source, why=why, fails=tuple(fails), misconception=misconception)


def _modules():
    for info in pkgutil.iter_modules(__path__):
        yield importlib.import_module(f"{__name__}.{info.name}")


def catalogue():
    """{assignment_id: {name: Mutant}} for every module in this package."""
    return {module.ASSIGNMENT: {name: replace(mutant, misconception=getattr(module, "MISCONCEPTION_OF", {}).get(name, ""),
                                              fix=tuple(getattr(module, "FIXES", {}).get(name, ())))
                                for name, mutant in module.MUTANTS.items()} for module in _modules()}


def not_graded_here():
    """{assignment_id: grade_ids of solution cells graded in another assignment}.

    A module lists them in NOT_GRADED_HERE: e.g. the attention functions that a later notebook asks
    students to paste from assignment 01, whose own mutants live in 01's catalogue.
    """
    return {module.ASSIGNMENT: set(getattr(module, "NOT_GRADED_HERE", ())) for module in _modules()}
