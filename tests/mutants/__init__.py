"""The catalogue of mutants, derived from each assignment's mistakes (solutions/<id>/mistakes.py).

Each `Wrong` of a mistake is one mutant: it replaces the source of one solution cell (its mistake's component) in
the solution notebook; tests/test_fastpath.py grades every mutant in-process on its own component's cells (it must
lose points, on the cells it names in `fails`), tests/test_diagnostics.py checks that the diagnostics name its
mistake first and that its source edited as the advice says (`fixed`) shows no mistake, and tests/test_mutants.py
sends a fixed sample through the whole grader. The wrongs of ELSEWHERE replace cells graded in another assignment
and must cost nothing here. Every solution cell needs at least tests/test_mutants.py's MINIMUM_PER_COMPONENT mutants.
"""
from dataclasses import dataclass
import functools
from pathlib import Path

from autograder import mistakes

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


@dataclass(frozen=True)
class Mutant:
    cell: str                  # grade_id of the solution cell it replaces
    source: str                # the wrong implementation
    why: str                   # the mistake, in a student's words
    fails: tuple = ()          # grade_ids of test cells that must not give full points
    misconception: str = ""    # the id of its mistake ("" for a cell graded elsewhere)
    fix: tuple = ()            # (old, new): the edit of `source` that follows the mistake's advice
    fixed_source: str = None   # the source with that edit made (None when none is declared or it does not apply)


def _mutants(found):
    for mistake in found.mistakes:
        for wrong in mistake.wrong:
            why = mistake.believed + (f" ({wrong.note})" if wrong.note else "")
            yield wrong.name, Mutant(mistake.component, wrong.source, why, tuple(wrong.fails), mistake.id,
                                     tuple(wrong.fixed or ()), wrong.fixed_source)
    for wrong in found.elsewhere:
        yield wrong.name, Mutant(wrong.cell, wrong.source, wrong.note, tuple(wrong.fails))


@functools.lru_cache(maxsize=1)
def _catalogue():
    return {p.parent.name: dict(_mutants(mistakes.declarations(p.parent)))
            for p in sorted(SOLUTIONS.glob("*/mistakes.py"))}


def catalogue():
    """{assignment_id: {name: Mutant}} of every assignment with a mistakes.py."""
    return {a: dict(m) for a, m in _catalogue().items()}


def not_graded_here():
    """{assignment_id: grade_ids of solution cells graded in another assignment}: the cells of ELSEWHERE (say, the
    attention functions that a later notebook asks students to paste from assignment 01)."""
    return {p.parent.name: set(mistakes.declarations(p.parent).graded_elsewhere)
            for p in sorted(SOLUTIONS.glob("*/mistakes.py"))}
