"""Tensor-aware feedback: what was wrong with a student's tensors, and the misconception behind it.

Each assignment may keep, beside its source notebook, a `diagnostics.py` (solutions/<id>/diagnostics.py,
never released to students) with

    MISCONCEPTIONS = {id: (the mistake, the fix, the MyST label of the book section that teaches it)}
                     (an id is <component>.<mistake>; one mistake keeps its name in every component)
    COMPONENTS     = {grade_id of a solution cell: function(namespace) -> dict of facts}

The grader appends one cell to the notebook it runs (after the last test and its canary), and after each
solution cell a one-line cell that keeps what the student defined there (a test that failed half-way may
leave a reference bound to the name; the diagnostics restore the student's own). The last cell loads
autograder/probes.py and the diagnostics in the kernel, calls every component's function on the
notebook's namespace, each on tiny fixed examples and under a time limit, and prints the facts as one
line of JSON behind a marker with a nonce. Nothing in that cell changes a score.

The facts travel through the verdict channel, so the grader trusts none of it: `parse` accepts only
the fixed schema below (known keys, numbers, short integer lists, names from fixed sets, misconception
ids of this assignment, pictures of at most 8 x 8 weights), bounded in size and rounded, so that no
text can ride on it. Out of it come the lines of feedback and, for attention weights, three heatmaps
(theirs, expected, difference) drawn here with matplotlib.
"""
import base64
import functools
import importlib.util
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from autograder import probes

TAG = "autograder-diagnostics"
CELL_TIMEOUT = 30            # seconds for the whole diagnostic cell
COMPONENT_TIMEOUT = 4        # seconds for one component's checks, inside the kernel
MAX_BYTES = 64_000           # of the JSON line
MAX_IDS = 4                  # misconceptions named per component
MAX_DIMS = probes.MAX_DIMS
MAX_INT = 10**9
MAX_NUMBER = 1e30
SUBJECTS = ("output", "weights", "mask", "encoding", "keys", "values", "matrix", "gradient", "errors")
TOLERANCE = 1e-4             # errors below this are not reported


@dataclass(frozen=True)
class Misconception:
    id: str
    mistake: str      # what is wrong, in a student's words
    fix: str          # what to change
    label: str        # the explicit MyST label of the book section that teaches it
    assignment: str


@dataclass(frozen=True)
class Facts:
    """What the kernel reported about one component: every field optional, each already validated."""
    misconceptions: tuple = ()
    subject: str = "output"
    raised: str = ""
    not_a_tensor: bool = False
    modified_input: bool = False
    shape: tuple = None
    expected_shape: tuple = None
    dtype: str = ""
    expected_dtype: str = ""
    nonfinite: int = 0
    nonfinite_at: tuple = None
    max_error: float = None
    max_error_at: tuple = None
    row_sum_error: float = None
    row_sum_at: tuple = None
    masked_weight: float = None
    masked_at: tuple = None
    weights: tuple = None            # rows of floats, at most 8 x 8
    expected_weights: tuple = None

    @property
    def misconception(self):
        return self.misconceptions[0] if self.misconceptions else ""


# ---------------------------------------------------------------------------------------------------
# The assignment's diagnostics


@functools.lru_cache(maxsize=16)
def _load(path, mtime):
    spec = importlib.util.spec_from_file_location(f"diagnostics_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def diagnostics(folder):
    """The diagnostics module of an assignment's source folder, or None when it has none."""
    path = Path(folder) / "diagnostics.py"
    return _load(str(path), path.stat().st_mtime_ns) if path.is_file() else None


def misconceptions(folder, assignment):
    """{id: Misconception} of an assignment's source folder."""
    module = diagnostics(folder)
    if module is None:
        return {}
    return {key: Misconception(key, mistake, fix, label, assignment)
            for key, (mistake, fix, label) in module.MISCONCEPTIONS.items()}


# ---------------------------------------------------------------------------------------------------
# The kernel's side

RUNNER = '''
def {run}():
    import json, signal, sys, types
    saved = {{name: sys.modules.get(name) for name in ("autograder", "autograder.probes")}}
    package, probes = types.ModuleType("autograder"), types.ModuleType("autograder.probes")
    package.__path__, package.probes = [], probes
    sys.modules.update({{"autograder": package, "autograder.probes": probes}})
    try:
        exec(compile({probes_source!r}, "probes", "exec"), probes.__dict__)
        checks = {{}}
        exec(compile({diagnostics_source!r}, "diagnostics", "exec"), checks)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    namespace = get_ipython().user_ns
    # the student's own definitions, as each solution cell left them: a test that failed half-way may have
    # left a reference implementation bound to the name
    namespace.update({{name: value for name, value in namespace.pop({kept!r}, {{}}).items() if value is not None}})
    try:
        probes.op_count(probes.torch.zeros, 1)   # set up the operation counter once, outside the alarms
    except Exception:
        pass

    def stop(signum, frame):
        raise probes.TimeUp()

    facts = {{}}
    for cell, check in checks["COMPONENTS"].items():
        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, {timeout})
        try:
            facts[cell] = probes.finish(check(namespace))
        except BaseException:
            facts[cell] = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    print({marker!r} + json.dumps(facts, allow_nan=False))
{run}()
del {run}
'''


def _kept(nonce):
    return f"_autograder_defined_{nonce}"


def keep_cell(name, nonce):
    """A cell, run right after the solution cell `name`, that keeps what the student bound to that name."""
    return f"globals().setdefault({_kept(nonce)!r}, {{}})[{name!r}] = globals().get({name!r})"


def marker(nonce):
    return f"autograder diagnostics {nonce}:"


def kernel_cell(folder, nonce):
    """The source of the diagnostic cell for an assignment's source folder (None when it has no diagnostics)."""
    path = Path(folder) / "diagnostics.py"
    if not path.is_file():
        return None
    return RUNNER.format(run=f"_autograder_diagnostics_{nonce}", probes_source=_text(probes.__file__),
                         diagnostics_source=_text(str(path)), timeout=COMPONENT_TIMEOUT, marker=marker(nonce),
                         kept=_kept(nonce))


def _text(path):
    """A source file's text, read once per worker while it is unchanged (every submission sends it)."""
    return _read(path, Path(path).stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _read(path, mtime):
    return Path(path).read_text()


def report_text(cell, nonce):
    """The JSON that the executed diagnostic cell printed behind its marker ("" if none)."""
    found = ""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            for line in text.splitlines():
                if line.startswith(marker(nonce)):
                    found = line[len(marker(nonce)):]
    return found


# ---------------------------------------------------------------------------------------------------
# The grader's side: strict parsing


def _reject(constant):
    raise ValueError(f"not a number: {constant}")


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= MAX_NUMBER:
        raise ValueError("a number was expected")
    return float(f"{float(value):.3g}")


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise ValueError("a count was expected")
    return value


def _ints(value):
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ValueError("a short list of integers was expected")
    return tuple(_count(v) for v in value)


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError("true or false was expected")
    return value


def _one_of(names):
    def check(value):
        if value not in names:
            raise ValueError(f"one of {names} was expected")
        return value
    return check


def _matrix(value):
    side = probes.MATRIX_SIDE
    if not isinstance(value, list) or not 0 < len(value) <= side:
        raise ValueError("rows of weights were expected")
    rows = tuple(tuple(round(_number(x), 3) for x in _row(row, side)) for row in value)
    if len({len(row) for row in rows}) != 1 or not rows[0]:
        raise ValueError("rows of weights must have one length")
    if any(abs(x) > 9 for row in rows for x in row):
        raise ValueError("weights out of range")
    return rows


def _row(row, side):
    if not isinstance(row, list) or len(row) > side:
        raise ValueError("a row of at most 8 numbers was expected")
    return row


FIELDS = {
    "subject": _one_of(SUBJECTS), "raised": _one_of(probes.EXCEPTIONS + ("Exception", "TimeoutError")),
    "not_a_tensor": _bool, "modified_input": _bool,
    "shape": _ints, "expected_shape": _ints, "dtype": _one_of(probes.DTYPES + ("other",)),
    "expected_dtype": _one_of(probes.DTYPES + ("other",)),
    "nonfinite": _count, "nonfinite_at": _ints, "max_error": _number, "max_error_at": _ints,
    "row_sum_error": _number, "row_sum_at": _ints, "masked_weight": _number, "masked_at": _ints,
    "weights": _matrix, "expected_weights": _matrix,
}


def parse(text, known_ids, known_components):
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
    found = {}
    for cell, facts in record.items():
        if cell not in known_components or not isinstance(facts, dict):
            continue
        try:
            found[cell] = _facts(facts, known_ids)
        except (ValueError, TypeError, RecursionError):
            continue
    return found


def _facts(record, known_ids):
    values = {}
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


def _shape(dims):
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _at(index):
    return "[" + ", ".join(str(i) for i in index) + "]" if index is not None else ""


def explain(facts, known):
    """Lines of feedback, in plain words, from a component's Facts; `known` is {id: Misconception}."""
    lines = []
    for key in facts.misconceptions[:1]:
        m = known[key]
        lines.append(f"Likely mistake [{key}]: {m.mistake}. How to fix it: {m.fix}.")
    subject = facts.subject
    verb = "are" if subject.endswith("s") else "is"
    if facts.raised == "NotImplementedError":
        lines.append("Not attempted yet: the function still raises NotImplementedError.")
    elif facts.raised:
        lines.append(f"On a small example your code raised {facts.raised}.")
    if facts.not_a_tensor:
        lines.append(f"Your {subject} {verb} not a tensor.")
    if facts.modified_input:
        lines.append("Your code changed one of its inputs in place: work on new tensors instead.")
    if facts.shape is not None and facts.expected_shape is not None and facts.shape != facts.expected_shape:
        lines.append(f"Your {subject} has shape {_shape(facts.shape)}; expected {_shape(facts.expected_shape)}.")
    if facts.dtype and facts.expected_dtype and facts.dtype != facts.expected_dtype:
        keep = " (keep the inputs' dtype)" if subject in ("output", "weights") else ""
        lines.append(f"Your {subject} {verb} {facts.dtype}, where {facts.expected_dtype} was expected{keep}.")
    if facts.nonfinite:
        lines.append(f"{facts.nonfinite} entries of your {subject} are NaN or infinite, the first at {_at(facts.nonfinite_at)}.")
    if facts.row_sum_error is not None and facts.row_sum_error > TOLERANCE:
        lines.append(f"Rows of your weights do not sum to 1: row {_at(facts.row_sum_at)} is off by {facts.row_sum_error:.3g}.")
    if facts.masked_weight is not None and facts.masked_weight > TOLERANCE:
        lines.append(f"A masked position got weight {facts.masked_weight:.3g}, at {_at(facts.masked_at)}.")
    if facts.max_error is not None and facts.max_error > TOLERANCE:
        lines.append(f"On the small example of the visible tests, the largest error of your {subject} is "
                     f"{facts.max_error:.3g}, at {_at(facts.max_error_at)}.")
    return lines


def picture(facts):
    """Three heatmaps (your weights, the expected weights, their difference) as PNG bytes, or None."""
    theirs, expected = facts.weights, facts.expected_weights
    if theirs is None or expected is None:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, cols = len(expected), len(expected[0])
    same_shape = (len(theirs), len(theirs[0])) == (rows, cols)
    panels = [("your weights", theirs, "viridis", 0, 1), ("expected weights", expected, "viridis", 0, 1)]
    if same_shape:
        difference = [[a - b for a, b in zip(r, s)] for r, s in zip(theirs, expected)]
        bound = max(1e-3, max(abs(x) for row in difference for x in row))
        panels.append(("yours − expected", difference, "RdBu_r", -bound, bound))
    size = 0.45 * max(rows, cols) + 1.2
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * size + 0.6, size + 0.5))
    for ax, (title, values, cmap, low, high) in zip(axes, panels):
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
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
        fig.suptitle(f"the matrix {_at(facts.max_error_at[:-2])} of the leading (batch, head) dimensions, "
                     f"where yours differ most", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def png_base64(data):
    return base64.b64encode(data).decode()


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")   # <component>.<mistake>, e.g. sdpa.mask-inverted


def check_module(module):
    """Problems of a diagnostics module's declarations (for the maintainers' tests): ids, texts, labels."""
    problems = []
    for key, value in module.MISCONCEPTIONS.items():
        if not SLUG.match(key):
            problems.append(f"{key!r}: ids are <component>.<mistake>, lowercase (the report groups by <mistake>)")
        if not (isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, str) and v for v in value)):
            problems.append(f"{key!r}: (mistake, fix, label) expected")
    return problems
