"""Tensor-aware feedback: what was wrong with a student's tensors, and the misconception behind it.

Each assignment may keep, beside its source notebook, a `diagnostics.py` (solutions/<id>/diagnostics.py,
never released to students) with

    COMPONENTS = {grade_id of a solution cell: function(namespace) -> dict of facts}
    PROBES     = {grade_id of a solution cell: [probe(names) -> what to compare], ...}   (optional)

and a `mistakes.py` that declares each mistake once (autograder/mistakes.py): the misconceptions that the
feedback names (an id is <component>.<mistake>; one mistake keeps its name in every component) come from it,
and so does the detector that recognises a mistake by its own output on the component's PROBES; a check adds
what only it can see (a Python loop, the memory of a call) to its facts' "misconceptions".

The checks run in the grader's own process, after the hidden tests (`run`), as the tests do
(autograder/verdicts.py): each name the student defined in a solution cell is a proxy of what they bound
there, kept in the kernel, and a call runs their code in the kernel; every reference, comparison and
picture is computed here, on the tensors that came back. Nothing the kernel prints reaches the facts,
and nothing in them changes a score. Each check runs on tiny fixed examples, under a time limit.

The facts are still held to a fixed schema (`parse`: known keys, numbers, short integer lists, names
from fixed sets, misconception ids of this assignment, pictures of at most 8 x 8 weights), bounded in
size and rounded, so that no text of the student's can ride on them into the feedback. Out of them come
the lines of feedback and, for attention weights, three heatmaps (theirs, expected, difference) drawn
here with matplotlib.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import importlib.util
import io
import json
import time
import types
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from autograder import editions, mistakes, probes, verdicts
from autograder.editions import Edition, say
from autograder.mistakes import Misconception, Probe
from autograder.model import Limits
from autograder.remote import KeptProxy, Remote

if TYPE_CHECKING:
    from nbformat import NotebookNode

COMPONENT_TIMEOUT = 4        # seconds for one call of the student's code in the kernel
MAX_BYTES = 64_000           # of the facts, as JSON
MAX_IDS = 4                  # misconceptions named per component
MAX_DIMS = probes.MAX_DIMS
MAX_INT = 10**9
MAX_NUMBER = 1e30
PICTURE_TITLES = ("your weights", "expected weights", "yours − expected")
SUBJECTS = ("output", "weights", "mask", "encoding", "keys", "values", "matrix", "gradient", "errors", "lse")
TOLERANCE = 1e-4             # errors below this are not reported

# What a check of an assignment's diagnostics.py returns: facts as plain values, before `parse` holds them to the schema
FactsRecord = dict[str, Any]
Check = Callable[[dict[str, Any]], FactsRecord]


@dataclass(frozen=True)
class Facts:
    """What the kernel reported about one component: every field optional, each already validated."""
    misconceptions: tuple[str, ...] = ()
    subject: str = "output"
    raised: str = ""
    not_a_tensor: bool = False
    modified_input: bool = False
    shape: tuple[int, ...] | None = None
    expected_shape: tuple[int, ...] | None = None
    dtype: str = ""
    expected_dtype: str = ""
    nonfinite: int = 0
    nonfinite_at: tuple[int, ...] | None = None
    max_error: float | None = None
    max_error_at: tuple[int, ...] | None = None
    row_sum_error: float | None = None
    row_sum_at: tuple[int, ...] | None = None
    masked_weight: float | None = None
    masked_at: tuple[int, ...] | None = None
    weights: tuple[tuple[float, ...], ...] | None = None            # rows of floats, at most 8 x 8
    expected_weights: tuple[tuple[float, ...], ...] | None = None

    @property
    def misconception(self) -> str:
        return self.misconceptions[0] if self.misconceptions else ""


# ---------------------------------------------------------------------------------------------------
# The assignment's diagnostics


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime: int) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"diagnostics_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def diagnostics(folder: Path | str) -> types.ModuleType | None:
    """The diagnostics module of an assignment's source folder, or None when it has none."""
    path = Path(folder) / "diagnostics.py"
    return _load(str(path), path.stat().st_mtime_ns) if path.is_file() else None


def misconceptions(folder: Path | str, assignment: str, edition: Edition = Edition.EN) -> dict[str, Misconception]:
    """{id: Misconception} of an assignment's source folder (its mistakes.py), for the feedback, in `edition`
    (zh/mistakes/<id>.yml)."""
    found = mistakes.misconceptions(folder, assignment)
    if edition is Edition.EN:
        return found
    return {key: dataclasses.replace(m, **dict(zip(("mistake", "fix"), editions.mistake_in(edition, assignment, key,
                                                                                           m.mistake, m.fix))))
            for key, m in found.items()}


# ---------------------------------------------------------------------------------------------------
# Running the checks, in the grader's process


def checks(folder: Path | str) -> dict[str, Check | None]:
    """{solution cell: check(names) -> facts, or None} of an assignment: its diagnostics' COMPONENTS, and None
    (the default check, `_default_check`) for every other component with probes."""
    found: dict[str, Check | None] = dict(getattr(diagnostics(folder), "COMPONENTS", {}))
    for cell in component_probes_of(folder):
        found.setdefault(cell, None)
    return found


def component_probes_of(folder: Path | str) -> dict[str, list[Probe]]:
    """{solution cell: its probes}: those of the assignment's mistakes.py, then those of its diagnostics.py."""
    return {**getattr(diagnostics(folder), "PROBES", {}), **mistakes.declarations(folder).probes}


def run(folder: Path | str, remote: Remote, cells: dict[str, list[str]], submitted: NotebookNode | None = None,
        only: Collection[str] | None = None, seconds: float = Limits.DIAGNOSTICS) -> dict[str, Facts]:
    """{solution cell: Facts} of an assignment's diagnostics, run in this process against the kernel behind
    `remote` (autograder/remote.py): each name of `cells` ({solution cell: the names it defines}) is bound to
    a proxy of what the student defined there, so every call of the checks runs the student's code in the
    kernel and every reference, comparison and picture is computed here; `submitted`, the notebook handed in,
    gives the checks the text of the student's definitions (`proxy.source`). `only`: these components' checks
    (the grader's: those with a failed test cell, the only ones whose facts the feedback and report show).
    A component's checks get COMPONENT_TIMEOUT seconds per call and all of them `seconds` in all (the grader
    passes Limits.diagnostics: 30 s, or its cell limit when that is shorter); a
    component that runs out of time, loses its kernel or breaks the schema reports nothing."""
    components = checks(folder)
    if not components:
        return {}
    every_probe = component_probes_of(folder)
    namespace = {name: KeptProxy(remote, cell, name) for cell, names in cells.items() for name in names}
    remote.student_names.update(namespace)
    for name in _given(folder, cells):   # the given code's names, rebindable as in the tests (verdicts.run_tests)
        remote.course_names.setdefault(name, None)
    remote.sources = verdicts.student_definitions(submitted) if submitted is not None else {}
    remote.names = namespace     # what the checks bind there (references) is what the student's code calls
    saved = remote.timeout, remote.deadline
    remote.timeout, remote.deadline = min(COMPONENT_TIMEOUT, seconds), time.monotonic() + seconds
    record: dict[str, Any] = {}
    try:
        for cell, check in components.items():
            if only is not None and cell not in only or cell not in cells:
                continue
            if remote.gone or time.monotonic() > remote.deadline:
                break
            try:
                remote.names = dict(namespace)   # a fresh one per component: what a check binds there reaches the kernel
                with verdicts.grader_state():
                    facts = check(remote.names) if check is not None else \
                        _default_check(folder, cell, cells, every_probe[cell], remote.names)
                    found = _recognised(folder, cell, cells, every_probe.get(cell), remote.names) + \
                        list(facts.get("misconceptions", ()))
                    facts["misconceptions"] = list(dict.fromkeys(found))[:MAX_IDS]
                    record[cell] = probes.finish(facts)
            except Exception:   # the checks' own failure, the kernel gone or out of time: no facts
                continue
    finally:
        remote.timeout, remote.deadline = saved
    known = {m.id for m in mistakes.declarations(folder).mistakes}
    return parse(json.dumps(record, allow_nan=False), known, set(components))


@contextlib.contextmanager
def _isolated(folder: Path | str, cell: str, cells: dict[str, list[str]], names: dict[str, Any]) -> Iterator[None]:
    """The other components' names, and the course's given code, bound to the solution notebook's while the block
    runs (graded in isolation: the student's code calls them in the grader)."""
    reference = mistakes.namespace(folder)
    others = {n: reference[n] for c, defined in cells.items() if c != cell for n in defined if n in reference}
    others |= {n: reference[n] for n in _given(folder, cells) if callable(reference.get(n))}
    with probes.swapped(names, others):
        yield


def _given(folder: Path | str, cells: dict[str, list[str]]) -> list[str]:
    """The names that the course's given code defines (the code cells that are no solution cell: chapter 5's KVCache
    and apply_rotary in 06)."""
    return [n for grade_id, source in mistakes.solution_cells(folder) if grade_id not in cells
            for n in verdicts.defined_names(source)]


def _recognised(folder: Path | str, cell: str, cells: dict[str, list[str]], component_probes: Sequence[Probe] | None,
                names: dict[str, Any]) -> list[str]:
    """The declared mistakes of `cell` whose own output the student's gives on the cell's probes."""
    if not component_probes or cell not in cells:
        return []
    with _isolated(folder, cell, cells, names):
        return mistakes.recognise(folder, cell, names, component_probes, sorted(cells[cell]))


def _default_check(folder: Path | str, cell: str, cells: dict[str, list[str]], component_probes: Sequence[Probe],
                   names: dict[str, Any]) -> FactsRecord:
    """The facts of a component that has probes and no check of its own: the first tensor of what the student's
    code gives on the first probe against the solution's (the solution's modules with the student's parameters)."""
    with _isolated(folder, cell, cells, names):
        theirs, expected = mistakes.first_outcomes(folder, names, component_probes[0], sorted(cells[cell]))
    if isinstance(theirs, mistakes.Raised):
        return {"raised": theirs.name}
    theirs, expected = mistakes.first_tensor(theirs), mistakes.first_tensor(expected)
    if expected is None:
        return {}
    facts = probes.describe(theirs, expected)
    facts["subject"] = "output"
    return facts


# ---------------------------------------------------------------------------------------------------
# The grader's side: strict parsing


def _reject(constant: str) -> NoReturn:
    raise ValueError(f"not a number: {constant}")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= MAX_NUMBER:
        raise ValueError("a number was expected")
    return float(f"{float(value):.3g}")


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise ValueError("a count was expected")
    return value


def _ints(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ValueError("a short list of integers was expected")
    return tuple(_count(v) for v in value)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false was expected")
    return value


def _one_of(names: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in names:
            raise ValueError(f"one of {names} was expected")
        return str(value)
    return check


def _matrix(value: object) -> tuple[tuple[float, ...], ...]:
    side = probes.MATRIX_SIDE
    if not isinstance(value, list) or not 0 < len(value) <= side:
        raise ValueError("rows of weights were expected")
    rows = tuple(tuple(round(_number(x), 3) for x in _row(row, side)) for row in value)
    if len({len(row) for row in rows}) != 1 or not rows[0]:
        raise ValueError("rows of weights must have one length")
    if any(abs(x) > 9 for row in rows for x in row):
        raise ValueError("weights out of range")
    return rows


def _row(row: object, side: int) -> list[Any]:
    if not isinstance(row, list) or len(row) > side:
        raise ValueError("a row of at most 8 numbers was expected")
    return row


FIELDS: dict[str, Callable[[object], object]] = {
    "subject": _one_of(SUBJECTS), "raised": _one_of(mistakes.EXCEPTIONS + ("Exception", "TimeoutError")),
    "not_a_tensor": _bool, "modified_input": _bool,
    "shape": _ints, "expected_shape": _ints, "dtype": _one_of(probes.DTYPES + ("other",)),
    "expected_dtype": _one_of(probes.DTYPES + ("other",)),
    "nonfinite": _count, "nonfinite_at": _ints, "max_error": _number, "max_error_at": _ints,
    "row_sum_error": _number, "row_sum_at": _ints, "masked_weight": _number, "masked_at": _ints,
    "weights": _matrix, "expected_weights": _matrix,
}


def parse(text: str, known_ids: Collection[str], known_components: Collection[str]) -> dict[str, Facts]:
    """{solution cell: Facts} from the kernel's JSON, keeping only what fits the schema exactly: a component
    whose facts have an unknown key, a wrong type, a value out of range or an unknown misconception id is
    dropped whole. Never raises."""
    if not text or len(text) > MAX_BYTES:
        return {}
    try:
        record = json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(record, dict):
        return {}
    found: dict[str, Facts] = {}
    for cell, facts in record.items():
        if cell not in known_components or not isinstance(facts, dict):
            continue
        try:
            found[cell] = _facts(facts, known_ids)
        except (ValueError, TypeError, RecursionError):
            continue
    return found


def _facts(record: dict[str, Any], known_ids: Collection[str]) -> Facts:
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key == "misconceptions":
            if not isinstance(value, list) or len(value) > MAX_IDS or any(v not in known_ids for v in value):
                raise ValueError("unknown misconception")
            values[key] = tuple(dict.fromkeys(value))
        elif key in FIELDS:
            values[key] = FIELDS[key](value)
        else:
            raise ValueError(f"unknown field {key!r}")
    return Facts(**values)


# ---------------------------------------------------------------------------------------------------
# Feedback


def _shape(dims: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _at(index: Sequence[int] | None) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]" if index is not None else ""


def explain(facts: Facts, known: Mapping[str, Misconception], edition: Edition = Edition.EN) -> list[str]:
    """Lines of feedback, in plain words, from a component's Facts; `known` is {id: Misconception} (in `edition`)."""
    lines = []
    for key in facts.misconceptions[:1]:
        m = known[key]
        lines.append(say(edition, "Likely mistake [{id}]: {mistake}. How to fix it: {fix}.", id=key, mistake=m.mistake,
                         fix=m.fix))
    subject = facts.subject
    plural = subject.endswith("s")
    thing = say(edition, subject)   # one of SUBJECTS, in the edition
    if facts.raised == "NotImplementedError":
        lines.append(say(edition, "Not attempted yet: the function still raises NotImplementedError."))
    elif facts.raised:
        lines.append(say(edition, "On a small example your code raised {error}.", error=facts.raised))
    if facts.not_a_tensor:
        lines.append(say(edition, "Your {subject} are not a tensor." if plural else "Your {subject} is not a tensor.",
                         subject=thing))
    if facts.modified_input:
        lines.append(say(edition, "Your code changed one of its inputs in place: work on new tensors instead."))
    if facts.shape is not None and facts.expected_shape is not None and facts.shape != facts.expected_shape:
        lines.append(say(edition, "Your {subject} has shape {shape}; expected {expected}.", subject=thing,
                         shape=_shape(facts.shape), expected=_shape(facts.expected_shape)))
    if facts.dtype and facts.expected_dtype and facts.dtype != facts.expected_dtype:
        keep = subject in ("output", "weights")
        lines.append(say(edition,
                         ("Your {subject} are {dtype}, where {expected} was expected (keep the inputs' dtype)." if plural
                          else "Your {subject} is {dtype}, where {expected} was expected (keep the inputs' dtype).")
                         if keep else ("Your {subject} are {dtype}, where {expected} was expected." if plural
                                       else "Your {subject} is {dtype}, where {expected} was expected."),
                         subject=thing, dtype=facts.dtype, expected=facts.expected_dtype))
    if facts.nonfinite:
        lines.append(say(edition, "{count} entries of your {subject} are NaN or infinite, the first at {at}.",
                         count=facts.nonfinite, subject=thing, at=_at(facts.nonfinite_at)))
    if facts.row_sum_error is not None and facts.row_sum_error > TOLERANCE:
        lines.append(say(edition, "Rows of your weights do not sum to 1: row {at} is off by {error}.",
                         at=_at(facts.row_sum_at), error=f"{facts.row_sum_error:.3g}"))
    if facts.masked_weight is not None and facts.masked_weight > TOLERANCE:
        lines.append(say(edition, "A masked position got weight {weight}, at {at}.",
                         weight=f"{facts.masked_weight:.3g}", at=_at(facts.masked_at)))
    if facts.max_error is not None and facts.max_error > TOLERANCE:
        lines.append(say(edition, "On the small example of the visible tests, the largest error of your {subject} is "
                         "{error}, at {at}.", subject=thing, error=f"{facts.max_error:.3g}", at=_at(facts.max_error_at)))
    return lines


def picture(facts: Facts, edition: Edition = Edition.EN) -> bytes | None:
    """Three heatmaps (your weights, the expected weights, their difference) as PNG bytes, or None. Its labels
    are in `edition` where a font can draw them (editions.cjk_font), else in English."""
    theirs, expected = facts.weights, facts.expected_weights
    if theirs is None or expected is None:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, cols = len(expected), len(expected[0])
    same_shape = (len(theirs), len(theirs[0])) == (rows, cols)
    if edition is not Edition.EN and editions.cjk_font() is None:
        edition = Edition.EN
    font = {"fontfamily": [editions.cjk_font(), "DejaVu Sans"]} if edition is not Edition.EN else {}
    yours, expected_title, difference_title = PICTURE_TITLES
    panels: list[tuple[str, Sequence[Sequence[float]], str, float, float]] = [
        (yours, theirs, "viridis", 0, 1), (expected_title, expected, "viridis", 0, 1)]
    if same_shape:
        difference = [[a - b for a, b in zip(r, s)] for r, s in zip(theirs, expected)]
        bound = max(1e-3, max(abs(x) for row in difference for x in row))
        panels.append((difference_title, difference, "RdBu_r", -bound, bound))
    size = 0.45 * max(rows, cols) + 1.2
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * size + 0.6, size + 0.5))
    for ax, (title, values, cmap, low, high) in zip(axes, panels):
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(say(edition, title), fontsize=9, **font)
        ax.set_xlabel(say(edition, "key"), fontsize=8, **font)
        ax.set_ylabel(say(edition, "query"), fontsize=8, **font)
        ax.set_xticks(range(len(values[0])))
        ax.set_yticks(range(len(values)))
        ax.tick_params(labelsize=7)
        if len(values) * len(values[0]) <= 36:
            for i, row in enumerate(values):
                for j, x in enumerate(row):
                    ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if (x < 0.5 if cmap == "viridis" else abs(x) > 0.6 * high) else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    if same_shape and facts.max_error_at is not None and len(facts.max_error_at) > 2:
        fig.suptitle(say(edition, "the matrix {at} of the leading (batch, head) dimensions, where yours differ most",
                         at=_at(facts.max_error_at[:-2])), fontsize=9, **font)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def png_base64(data: bytes) -> str:
    return base64.b64encode(data).decode()
