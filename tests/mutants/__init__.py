"""Catalogues of plausible wrong implementations, one module per assignment (tests/mutants/<id>.py).

Each module defines MUTANTS: a dict from a mutant's name to a Mutant. A mutant replaces the source of
one solution cell (by its nbgrader grade_id) in the solution notebook; tests/test_mutants.py grades
every mutant and checks that it loses points (and, where `fails` is given, on those test cells).
"""
from dataclasses import dataclass, field
import importlib
import pkgutil


@dataclass(frozen=True)
class Mutant:
    cell: str                  # grade_id of the solution cell it replaces
    source: str                # the wrong implementation
    why: str                   # the mistake, in a student's words
    fails: tuple = field(default=())  # grade_ids of test cells that must not give full points


def catalogue():
    """{assignment_id: {name: Mutant}} for every module in this package."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.ASSIGNMENT] = module.MUTANTS
    return found
