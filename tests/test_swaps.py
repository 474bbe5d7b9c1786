"""Every input matters, in every assignment (issue 23, item 4): each argument swap of tests/swaps.py (one read of a
tensor argument replaced by another same-shaped argument of the same function, one site at a time) loses points
on its own component's cells, graded in-process (tests/fastpath.py); on no other cell, by the proof below.

Every generated swap is graded; nothing is sampled. The exceptions are explicit:

* EQUIVALENT: swaps that provably compute what the solution computes (a read of a tensor's device, dtype or a
  size that the function's contract makes equal for both arguments), each with its reason. The test grades them
  too and asserts that they keep every point: a listed swap that loses points is not equivalent and must go.
* KNOWN_SURVIVORS_04_05: the swaps of 04 and 05 that keep every point but are wrong, whose notebooks are being
  edited elsewhere; the test asserts that the survivors are exactly these (so an entry must go once the
  hidden tests catch it). 01, 02 and 03 have none.

A swap is graded on its own component's cells only, as every mutant is (tests/test_fastpath.py): that a component's
mistake costs no other component anything is proven once per component there (a component that raises, or
pollutes, costs every other component's cells nothing: so no other cell reads it). 106 swaps in all; about 80 s of
CPU when each was graded with every graded cell up to its component's last one.
"""
import ast

import nbformat
import pytest

from autograder import course, verdicts
from tests.conftest import ALL_ASSIGNMENTS, ASSIGNMENTS, solution_path, with_cell_replaced
from tests.fastpath import grade_in_process
from tests.swaps import SAME_SHAPED, functions, graded_components, solution_cells, swaps

PORTED = [a for a in ASSIGNMENTS if verdicts.in_grader(nbformat.read(solution_path(a), as_version=4))]

_DEVICE = "the grader's tests run on the CPU: every tensor of a call is on the same device"
_SAME_DTYPE = ("a valid call gives query, key and value one dtype and one device (the matmuls of attention "
               "require it): a tensor made like one of them is made like the others")

# {assignment: {Swap.key: why the swap computes what the solution computes}}
EQUIVALENT = {
    "01_attention": {
        ("masked_softmax", "masked_softmax", "scores#2", "mask"):
            f"`device=mask.device` for `device=scores.device`: mask is a tensor by then (None became one made on "
            f"scores.device), and {_DEVICE}",
        ("scaled_dot_product_attention", "scaled_dot_product_attention", "query#0", "key"):
            "`d_k = key.shape[-1]` for `query.shape[-1]`: queries and keys share their width d_k (Q K^T needs it)",
    },
    "05_attention_at_scale": {
        ("online_softmax_attention", "online_softmax_attention", "query#2", "key"):
            "`math.sqrt(key.size(-1))` for `query.size(-1)`: queries and keys share their width d",
        ("online_softmax_attention", "online_softmax_attention", "key#0", "value"):
            "`T_k = value.size(-2)` for `key.size(-2)`: keys and values share their length T_k",
        **{("online_softmax_attention", "online_softmax_attention", f"query#{n}", other):
           f"`{other}.new_full`/`{other}.new_zeros` for `query.new_...` (the shape still read from query): {_SAME_DTYPE}"
           for n in (3, 5, 7) for other in ("key", "value")},
        **{("online_softmax_attention", "online_softmax_attention", f"query#{n}", other):
           f"`device={other}.device` for `device=query.device`: {_DEVICE}"
           for n in (9, 11) for other in ("key", "value")},
    },
}

# {assignment: {Swap.key: what is wrong}}: swaps of 04 and 05 that keep every point (their hidden tests are not
# ours to edit here). Empty: every non-equivalent swap of 04 and 05 already loses points.
KNOWN_SURVIVORS_04_05 = {
    "04_transformer": {},
    "05_attention_at_scale": {},
}


def own_cells(assignment):
    """{component: its graded cells}."""
    found = {}
    for cell, component in course.components(nbformat.read(solution_path(assignment), as_version=4)).items():
        found.setdefault(component, set()).add(cell)
    return found


def test_the_table_names_every_graded_component_and_real_arguments():
    assert sorted(SAME_SHAPED) == ALL_ASSIGNMENTS, "tests/swaps.py's SAME_SHAPED must name every assignment"
    for assignment in SAME_SHAPED:
        assert set(SAME_SHAPED[assignment]) == set(graded_components(assignment)), \
            f"{assignment}: tests/swaps.py's SAME_SHAPED must name every graded component, and only those"
        cells = solution_cells(assignment)
        for component, table in SAME_SHAPED[assignment].items():
            defined = functions(ast.parse(cells[component]))
            for function, groups in table.items():
                assert function in defined, f"{assignment} {component}: no function {function}"
                node = defined[function]
                arguments = {a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs}
                for group in groups:
                    assert len(group) >= 2 and set(group) <= arguments, f"{assignment} {function}: bad group {group}"


def test_a_swap_is_one_identifier_at_one_site():
    for assignment in SAME_SHAPED:
        cells = solution_cells(assignment)
        for swap in swaps(assignment):
            before, after = cells[swap.component].splitlines(), swap.source.splitlines()
            changed = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
            assert len(before) == len(after) and len(changed) == 1, swap
            assert len(after[changed[0]]) - len(before[changed[0]]) == len(swap.replacement) - len(swap.name), swap
            assert ast.dump(ast.parse(swap.source)) != ast.dump(ast.parse(cells[swap.component])), swap


@pytest.mark.parametrize("assignment", PORTED)
def test_every_argument_swap_loses_points_on_its_own_cells(assignment):
    generated = list(swaps(assignment))
    keys = {s.key for s in generated}
    equivalent, known = EQUIVALENT.get(assignment, {}), KNOWN_SURVIVORS_04_05.get(assignment, {})
    assert set(equivalent) <= keys, f"EQUIVALENT names swaps that are not generated: {sorted(set(equivalent) - keys)}"
    assert set(known) <= keys, f"KNOWN_SURVIVORS_04_05 names swaps that are not generated: {sorted(set(known) - keys)}"
    assert not set(equivalent) & set(known)
    assert not known or assignment in ("04_transformer", "05_attention_at_scale"), "only 04 and 05 may keep survivors"
    own = own_cells(assignment)
    solution = nbformat.read(solution_path(assignment), as_version=4)
    failed = {g for g, v in grade_in_process(solution, solution).items() if not v.passed}
    assert failed == set(), f"the solution fails {sorted(failed)}"   # and so every prefix of its graded cells
    survivors, not_equivalent = {}, []
    for swap in generated:
        verdicts_ = grade_in_process(with_cell_replaced(assignment, swap.component, swap.source), solution,
                                     only=frozenset(own[swap.component]))
        assert set(verdicts_) == own[swap.component], f"{swap}: graded on {sorted(verdicts_)}"
        failed = {g for g, v in verdicts_.items() if not v.passed}
        if swap.key in equivalent:
            if failed:
                not_equivalent.append(f"{swap}: listed as equivalent but fails {sorted(failed)}")
        elif not failed:   # graded on its own cells only: what failed is its own
            survivors[swap.key] = str(swap)
    assert not not_equivalent, "\n".join(not_equivalent)
    unexpected = {k: v for k, v in survivors.items() if k not in known}
    assert not unexpected, "argument swaps that keep every point (a hidden test must give these inputs " \
                           "distinct values):\n" + "\n".join(unexpected.values())
    caught = set(known) - set(survivors)
    assert not caught, f"these swaps now lose points: remove them from KNOWN_SURVIVORS_04_05: {sorted(caught)}"
