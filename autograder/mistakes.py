"""The mistakes of an assignment, each declared once, and what is derived from them.

Each assignment keeps, beside its source notebook, a `mistakes.py` (solutions/<id>/mistakes.py, never released
to students) with

    MISTAKES  = [Mistake(...), ...]   every plausible mistake of the graded components, once each
    ELSEWHERE = [Wrong(...), ...]     wrong versions of cells graded in another assignment (they must cost nothing
                                      here); optional
    GRADED_ELSEWHERE = ("cell", ...)  solution cells graded in another assignment (those of ELSEWHERE are); optional
    PROBES    = {component: [probe, ...]}  what the detector compares (autograder/probes.py `calls`, `gradients`,
                                      `builds`); a component's probes may instead sit in its diagnostics.py, beside
                                      the examples its hand-written check shares with them

A `Mistake` says what the student believed, how to fix it (in words, and in each `Wrong` as the edit that applies
them), the book section that teaches it, and the wrong code: one `Wrong` or more, each the whole source of the
component's solution cell as a student who holds that belief writes it. Derived from them:

- the misconception catalogue of the feedback (`misconceptions`; autograder/diagnose.py);
- the project's catalogue of mutants (tests/mutants/), each `Wrong` one mutant, with its fix;
- the detector that recognises a mistake by its own output (`recognise`): the first `Wrong` of each mistake runs
  here, in the grader's process, on the component's probes (declared by the assignment's diagnostics as PROBES),
  with the solution's code for every other component; a student's component whose results agree with it on every
  probe (or on every probe where the mistake shows, when the student made several) is taken to hold that belief.

The solution notebook's code is the reference of the diagnostics (never of the hidden tests, which keep
independent references): it runs here once per process, in a namespace of its own, under the grader's state.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import nbformat

if TYPE_CHECKING:
    import torch

# torch, autograder.verdicts and autograder.remote (which import torch) are imported where they are used: the
# grader's main process reads the declarations (misconceptions, fixes) and never runs a probe

# What the student's code may raise, by name, in a probe's outcome and the diagnostics' facts
EXCEPTIONS = ("NotImplementedError", "TypeError", "ValueError", "RuntimeError", "IndexError", "AttributeError",
              "NameError", "AssertionError", "KeyError", "ZeroDivisionError", "RecursionError")


def exception_name(error: BaseException) -> str:
    """The name of what the student's code raised (in the kernel: the name the kernel reported), among
    EXCEPTIONS, else "Exception"."""
    from autograder.remote import RemoteError
    name = error.kind if isinstance(error, RemoteError) else type(error).__name__
    return name if name in EXCEPTIONS else "Exception"

Edit = tuple[str, str]          # (old, new): a text replaced once in a source
Probe = Callable[[dict[str, Any]], Any]   # what a probe computes from a namespace of the component's names


@dataclass(frozen=True)
class Wrong:
    """One wrong implementation of a component: the cell's whole source, as a student writes it."""
    name: str                    # the mutant's name, "<component>/<what>", unique in the assignment
    source: str = ""             # the solution cell's source, with the mistake
    edit: Edit | None = None     # or: the edit of the solution cell's source that makes the mistake
    fixed: Edit | None = None    # the edit of `source` (every occurrence) that does what the fix says
    fails: tuple[str, ...] = ()  # grade_ids of test cells that must not give it full points
    note: str = ""               # how this one differs from the mistake's other wrongs, if it has several
    cell: str = ""               # the cell it replaces: only in ELSEWHERE (a mistake's wrongs replace its component)

    @property
    def fixed_source(self) -> str | None:
        """The source with the advice followed (None when no fix is declared or its old text is absent)."""
        if self.fixed is None or self.fixed[0] not in self.source:
            return None
        return self.source.replace(self.fixed[0], self.fixed[1])


@dataclass(frozen=True)
class Mistake:
    """One belief a student may hold about one component."""
    id: str                      # <component>.<mistake>, lowercase: e.g. sdpa.mask-inverted
    component: str               # the grade_id of the solution cell
    believed: str                # what is wrong, in a student's words (the feedback's first line)
    fix: str                     # what to change
    section: str                 # the explicit MyST label of the book section that teaches it
    wrong: tuple[Wrong, ...]     # at least one; the first is the model the detector compares with
    detect: bool = True          # False: only the diagnostics' own checks can see it (a loop, memory, timing)

    def __post_init__(self) -> None:
        if isinstance(self.wrong, Wrong):
            object.__setattr__(self, "wrong", (self.wrong,))


@dataclass(frozen=True)
class Misconception:
    """A mistake as the feedback names it."""
    id: str
    mistake: str
    fix: str
    label: str
    assignment: str


@dataclass(frozen=True)
class Declarations:
    """What an assignment's mistakes.py declares."""
    mistakes: tuple[Mistake, ...] = ()
    elsewhere: tuple[Wrong, ...] = ()
    graded_elsewhere: frozenset[str] = frozenset()   # solution cells with no test cells here
    probes: dict[str, list[Probe]] = field(default_factory=dict)   # {component: the inputs its mistakes show on}

    def of(self, component: str) -> list[Mistake]:
        return [m for m in self.mistakes if m.component == component]


# ---------------------------------------------------------------------------------------------------
# Reading the declarations


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime: int, notebook_mtime: int) -> Declarations:
    spec = importlib.util.spec_from_file_location(f"mistakes_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    solution = dict(solution_cells(Path(path).parent))
    found = tuple(replace(m, wrong=tuple(_resolved(w, m.component, solution) for w in m.wrong))
                  for m in getattr(module, "MISTAKES", ()))
    elsewhere = tuple(_resolved(w, w.cell, solution) for w in getattr(module, "ELSEWHERE", ()))
    cells = frozenset(getattr(module, "GRADED_ELSEWHERE", ())) | {w.cell for w in elsewhere}
    return Declarations(found, elsewhere, cells, dict(getattr(module, "PROBES", {})))


def _resolved(wrong: Wrong, cell: str, solution: dict[str, str]) -> Wrong:
    """The wrong with its source: given, or the solution cell's with `edit` made (its old text found once)."""
    if wrong.source or wrong.edit is None:
        return wrong
    old, new = wrong.edit
    if cell not in solution or solution[cell].count(old) != 1:
        raise ValueError(f"{wrong.name}: the old text of its edit must be found once in the solution cell {cell!r}: "
                         f"{old!r}")
    return replace(wrong, source=solution[cell].replace(old, new, 1))


def declarations(folder: Path | str) -> Declarations:
    """The mistakes of an assignment's source folder (none when it has no mistakes.py)."""
    path, notebook = Path(folder) / "mistakes.py", solution_notebook(folder)
    if not path.is_file():
        return Declarations()
    return _load(str(path), path.stat().st_mtime_ns, notebook.stat().st_mtime_ns)   # edits resolve against it


def misconceptions(folder: Path | str, assignment: str) -> dict[str, Misconception]:
    """{id: Misconception} of an assignment's source folder."""
    return {m.id: Misconception(m.id, m.believed, m.fix, m.section, assignment) for m in declarations(folder).mistakes}


def problems(found: Declarations, components: set[str], cells: dict[str, set[str]]) -> list[str]:
    """What is wrong with an assignment's declarations (for the maintainers' tests): ids, texts, components,
    unique names, fixes and failing cells that exist. `components`: the graded solution cells; `cells`: {solution
    cell: grade_ids of its test cells}."""
    import re
    slug = re.compile(r"^[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")
    out, ids, names = [], set(), set()
    for m in found.mistakes:
        if not slug.match(m.id):
            out.append(f"{m.id!r}: ids are <component>.<mistake>, lowercase (the report groups by <mistake>)")
        if m.id in ids:
            out.append(f"{m.id!r} is declared twice")
        ids.add(m.id)
        if m.component not in components:
            out.append(f"{m.id!r}: {m.component!r} is not a graded solution cell")
        if not all(isinstance(t, str) and t.strip() for t in (m.believed, m.fix, m.section)):
            out.append(f"{m.id!r}: believed, fix and section are all needed")
        if not m.wrong:
            out.append(f"{m.id!r}: declare at least one wrong implementation")
    for w in [w for m in found.mistakes for w in m.wrong] + list(found.elsewhere):
        if w.name in names:
            out.append(f"{w.name!r} is declared twice")
        names.add(w.name)
        unknown = set(w.fails) - set().union(*cells.values()) if cells else set()
        if unknown:
            out.append(f"{w.name!r}: no test cell {sorted(unknown)}")
    for m in found.mistakes:
        for w in m.wrong:
            if w.fixed is None:
                out.append(f"{w.name!r}: declare `fixed`, the edit that follows the advice: {m.fix}")
            elif w.fixed_source is None or w.fixed_source == w.source:
                out.append(f"{w.name!r}: the old text of its fix is not in its source")
    return out


# ---------------------------------------------------------------------------------------------------
# The reference: the solution notebook's code, in a namespace of this process


@functools.lru_cache(maxsize=16)
def _solution(path: str, mtime: int) -> tuple[tuple[str, str], ...]:
    """(grade_id or "", source) of the notebook's code cells that are not test cells."""
    from autograder.course import without_magics
    notebook = nbformat.read(path, as_version=4)
    cells = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("grade"):
            cells.append((str(meta.get("grade_id", "")), without_magics(cell.source)))
    return tuple(cells)


def solution_notebook(folder: Path | str) -> Path:
    """The notebook that the mistakes' edits are written against, and whose code is the diagnostics' reference:
    the English solution. A Chinese scratch course keeps it beside its translated notebook as course.ENGLISH_SOURCE (a name
    nbgrader does not take for a notebook of the assignment): the same code, with the English comments that an
    edit's old text may quote."""
    from autograder.course import ENGLISH_SOURCE
    folder = Path(folder)
    english = folder / ENGLISH_SOURCE.format(id=folder.name)
    return english if english.is_file() else folder / f"{folder.name}.ipynb"


def solution_cells(folder: Path | str) -> tuple[tuple[str, str], ...]:
    path = solution_notebook(folder)
    return _solution(str(path), path.stat().st_mtime_ns)


def _run(cells: Sequence[tuple[str, str]]) -> dict[str, Any]:
    from autograder import verdicts
    names: dict[str, Any] = {"__name__": "autograder_reference"}
    with verdicts.grader_state():
        for grade_id, source in cells:
            exec(compile(source, f"<reference {grade_id or 'cell'}>", "exec"), names)
    return names


_NAMESPACES: dict[tuple[str, str], dict[str, Any]] = {}


def namespace(folder: Path | str, cell: str = "", source: str = "") -> dict[str, Any]:
    """The solution notebook's names, run here once per process; with `cell` given, a copy in which `source` (a
    wrong version of that cell) is run over them: the other components stay the solution's, which call the
    solution's own helpers (their globals are the first namespace)."""
    key = (str(folder), str(hash(solution_cells(folder))))
    if key not in _NAMESPACES:
        if len(_NAMESPACES) > 16:
            _NAMESPACES.clear()
        _NAMESPACES[key] = _run(solution_cells(folder))
    if not cell:
        return _NAMESPACES[key]
    from autograder import verdicts
    wrong = dict(_NAMESPACES[key])
    with verdicts.grader_state(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(source, f"<mistake of {cell}>", "exec"), wrong)
    return wrong


# ---------------------------------------------------------------------------------------------------
# Recognising a mistake by its own output


class Incomparable(Exception):
    """A module of the mistake's cannot take the student's parameters (other names or shapes)."""


@dataclass(frozen=True)
class Raised:
    """What a probe's code raised: the exception's name (`exception_name`)."""
    name: str


@dataclass
class _Builds:
    """A class of the student's whose instances are recorded, with their parameters, as a probe builds them."""
    cls: Any
    states: list[dict[str, torch.Tensor] | None] = field(default_factory=list)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from autograder.remote import KernelGone, OutOfTime
        made = self.cls(*args, **kwargs)
        state = None
        if hasattr(made, "state_dict") and callable(getattr(made, "state_dict", None)):
            try:
                state = {k: v.detach().clone() for k, v in made.state_dict().items() if isinstance(v, torch.Tensor)}
            except (KernelGone, OutOfTime):
                raise
            except Exception:
                state = None
        self.states.append(state)
        return made


@dataclass
class _Adopts:
    """A class of the mistake's whose k-th instance takes the parameters of the student's k-th."""
    cls: Any
    states: list[dict[str, torch.Tensor] | None]
    made: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        from torch import nn
        instance = self.cls(*args, **kwargs)
        k, self.made = self.made, self.made + 1
        if isinstance(instance, nn.Module):
            theirs = self.states[k] if k < len(self.states) else None
            ours = instance.state_dict()
            if theirs is None or set(theirs) != set(ours) or any(theirs[n].shape != ours[n].shape for n in ours):
                raise Incomparable()
            with torch.no_grad():
                instance.load_state_dict(theirs)
        return instance


def unrecorded(value: Any) -> Any:
    """A class as its own code builds it: not the detector's wrapper that records the student's instances or gives
    the mistake's the student's parameters (what a probe of a class's initialisation builds: 06's TinyLM)."""
    return value.cls if isinstance(value, (_Builds, _Adopts)) else value


def _outcome(probe: Probe, names: dict[str, Any]) -> Any:
    from autograder.remote import KernelGone, OutOfTime
    try:
        return probe(names)
    except (KernelGone, OutOfTime, Incomparable):
        raise
    except (Exception, SystemExit) as error:
        return Raised(exception_name(error))


def agrees(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether two outcomes of a probe are the same: tensors of one shape and dtype with close values (NaN and
    infinities where the other has them), numbers, sequences and dicts of such, or exceptions of one name."""
    import torch
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape \
                or a.dtype != b.dtype:
            return False
        if not (a.is_floating_point() or a.is_complex()):
            return bool(torch.equal(a.detach(), b.detach()))
        x, y = a.detach().double(), b.detach().double()
        return bool(torch.equal(x.isnan(), y.isnan()) and torch.equal(x.isinf() * x.sign(), y.isinf() * y.sign())
                    and torch.allclose(x.nan_to_num(0, 0, 0), y.nan_to_num(0, 0, 0), atol=atol, rtol=rtol))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(agrees(x, y, atol, rtol) for x, y in zip(a, b)))
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and \
            all(agrees(a[k], b[k], atol, rtol) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if type(a) is not type(b):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
    if isinstance(a, Raised) or isinstance(b, Raised):
        return bool(a == b)
    if a is None or b is None or isinstance(a, str):
        return bool(a == b)
    return False    # objects (modules, proxies): a probe compares what it reads of them


def _recording(names: dict[str, Any], component_names: Sequence[str]) -> tuple[dict[str, Any], dict[str, _Builds]]:
    """`names` with the component's names recording what each call of them builds."""
    builds = {n: _Builds(names[n]) for n in component_names if n in names}
    return {**names, **builds}, builds


def _adopting(names: dict[str, Any], builds: dict[str, _Builds]) -> dict[str, Any]:
    """`names` with the component's names giving each module they build the parameters recorded in `builds`."""
    return {**names, **{n: _Adopts(names[n], b.states) for n, b in builds.items() if n in names}}


def _run_probes(probes: Sequence[Probe], names: dict[str, Any], component_names: Sequence[str],
                recorded: list[dict[str, _Builds]] | None) -> tuple[list[Any], list[dict[str, _Builds]]]:
    """The outcome of each probe on `names` (Incomparable where a module cannot take the recorded parameters),
    and what the component's names built in each (recorded when `recorded` is None, else adopted from it)."""
    outcomes, builds = [], []
    for i, probe in enumerate(probes):
        if recorded is None:
            bound, built = _recording(names, component_names)
        else:
            built = recorded[i]
            bound = _adopting(names, built)
        try:
            outcomes.append(_outcome(probe, bound))
        except Incomparable:
            outcomes.append(Incomparable)
        builds.append(built)
    return outcomes, builds


def recognise(folder: Path | str, component: str, names: dict[str, Any], probes: Sequence[Probe],
              component_names: Sequence[str]) -> list[str]:
    """The ids of the mistakes of `component` that the student's code holds: their first wrong implementation
    gives what the student's gives on every probe, or (when none does) on every probe where it differs from the
    solution without raising. `names`: the student's namespace as the checks see it (proxies, the other
    components already swapped for references); `component_names`: the names the component's cell defines."""
    found = declarations(folder).of(component)
    if not found or not probes:
        return []
    theirs, built = _run_probes(probes, names, component_names, None)
    reference, _ = _run_probes(probes, namespace(folder), component_names, built)
    exact, partial = [], []
    for mistake in found:
        if not mistake.detect:
            continue
        model = namespace(folder, component, mistake.wrong[0].source)
        with warnings.catch_warnings():     # what the mistake's code warns of is no news to anyone
            warnings.simplefilter("ignore")
            outs, _ = _run_probes(probes, model, component_names, built)
        shows = [i for i, (o, r) in enumerate(zip(outs, reference))    # the student's parameters may fit the
                 if o is not Incomparable and (r is Incomparable or not agrees(o, r))]   # mistake's module only
        if not shows:
            continue
        if all(o is not Incomparable and agrees(o, t) for o, t in zip(outs, theirs)):
            exact.append(mistake.id)
        elif all(not isinstance(outs[i], Raised) and agrees(outs[i], theirs[i]) for i in shows):
            partial.append(mistake.id)
    return exact or partial


def shows(folder: Path | str, mistake: Mistake, probes: Sequence[Probe], component_names: Sequence[str]) -> bool:
    """Whether the mistake's model differs from the solution on at least one probe (for the maintainers' tests:
    a detectable mistake that no probe shows needs another probe)."""
    reference, built = _run_probes(probes, namespace(folder), component_names, None)
    model = namespace(folder, mistake.component, mistake.wrong[0].source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs, _ = _run_probes(probes, model, component_names, built)
    return any(o is Incomparable or not agrees(o, r) for o, r in zip(outs, reference))   # other parameters show it


def first_outcomes(folder: Path | str, names: dict[str, Any], probe: Probe, component_names: Sequence[str]
                   ) -> tuple[Any, Any]:
    """What `probe` gives on the student's names, and on the solution's (its modules given the student's
    parameters; the solution's own where they do not fit)."""
    theirs, built = _run_probes([probe], names, component_names, None)
    expected, _ = _run_probes([probe], namespace(folder), component_names, built)
    if expected[0] is Incomparable:
        expected, _ = _run_probes([probe], namespace(folder), component_names, None)
    return theirs[0], expected[0]


def first_tensor(outcome: Any) -> torch.Tensor | None:
    """The first tensor in an outcome (depth first), or None."""
    import torch
    if isinstance(outcome, torch.Tensor):
        return outcome
    items = outcome.values() if isinstance(outcome, dict) else outcome if isinstance(outcome, (list, tuple)) else ()
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None
