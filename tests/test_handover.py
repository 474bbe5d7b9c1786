"""No chapter hands over a graded component behind a thin adapter.

test_book_code.py finds chapter code that *looks* like a solution; this test finds chapter code that
*works* as one. Every function and class that a chapter (book/NN_*.md, every numbered chapter) defines at the
top level of its `{code-cell}` blocks (parsed with ast) is put, behind thin adapters, in the place of
each graded component of the chapter's own assignment, and graded in process (tests/fastpath.py). It
must earn less than half of the component's points.

What is put in the solution cell: the chapter's imports, its constant assignments (literals) and all of
its top-level definitions (each in a try block, an import of the book's own helpers fails, so that one that cannot be defined outside the book
does not hide the others), followed by one adapter that defines the contract's name. The adapters:

* a function for a function component (same kind only), with the contract's signature (names and
  defaults of the solution's `def`), calling the chapter's function with
  - its parameters matched to the contract's by name: equal, a plural or singular of it, a one-letter
    abbreviation (q for query), or a synonym of SYNONYMS (block_size -> rows_per_tile, ...);
    the chapter's required parameters left unmatched then filled with the unmatched contract
    parameters in order;
  - every ordering of the contract's parameters on the chapter's required parameters (argument
    order permutations, at most MAX_ORDERS of them, the contract's required parameters first), its
    optional parameters still matched by name;
  each returning the result as it is or, where the chapter's function returns a tuple, its first element;
* a subclass for a class component (same kind only), whose `__init__` and `forward` take the
  contract's parameters and call the chapter's with them mapped as above (by name, then in order),
  returning the first element of a tuple; after `__init__`, the chapter's submodules are exposed
  under the contract's attribute names (those the solution's `__init__` assigns), matched by type in
  order (the type's name, or the class the notebook binds to that name then, such as the tests'
  stand-in for MultiHeadAttention; ModuleLists expanded), an `nn.MultiheadAttention` replaced by the notebook's own
  `MultiHeadAttention` and an `nn.Sequential` by its `PositionWiseFFN` where the contract has those,
  and a method `attend(module, queries, source, mask)` of the chapter's class overridden to call the
  notebook's attention (the adapter that let chapter 4's blocks pass the graded blocks).
"""
import ast
import itertools
import re
import textwrap
import time

import nbformat
import pytest

from tests.conftest import REPO, max_points, solution_path, with_cell_replaced
from tests.fastpath import grade_in_process
from tests.test_mutants import component_cells

CHAPTERS = {path: next((a for a in sorted(p.name for p in (REPO / "solutions").iterdir())
                        if a[:2] == path.name[:2]), None)
            for path in sorted((REPO / "book").glob("[0-9][0-9]_*.md"))}
MAX_ORDERS = 6
SYNONYMS = {"block_size": {"rows_per_tile", "cols_per_tile", "block", "tile", "tile_size"},
            "d_model": {"width", "dim", "d", "D", "embed_dim"}, "num_heads": {"heads", "H", "n_heads"},
            "d_ff": {"hidden", "ffn_dim", "dim_feedforward"}, "dropout": {"p_drop", "p"},
            "norm_first": {"pre_norm"}, "x": {"inputs", "h", "y", "tokens"}, "positions": {"p", "pos", "position"},
            "self_mask": {"mask"}, "memory_mask": {"cross_mask"}, "mask": {"attn_mask", "allowed"}}


def chapter_cells(path):
    """The code of every {code-cell} of a chapter, without its options, front matter and magics."""
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)
    found = []
    for code in cells:
        code = re.sub(r"\A---\n.*?\n---\n", "", code, flags=re.S)
        code = re.sub(r"^:[\w-]+:.*$", "", code, flags=re.M)
        found.append("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
    return found


def chapter_definitions(path):
    """(prelude source, [top-level FunctionDef/ClassDef nodes]) of a chapter."""
    imports, constants, definitions = [], [], []
    for code in chapter_cells(path):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(ast.unparse(node))
            elif isinstance(node, ast.Assign) and all(isinstance(t, (ast.Name, ast.Tuple)) for t in node.targets):
                try:
                    ast.literal_eval(node.value)
                    constants.append(ast.unparse(node))
                except ValueError:
                    pass
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                definitions.append(node)
    guarded = ["try:\n" + textwrap.indent(code, "    ") + "\nexcept Exception:\n    pass"
               for code in imports + constants + [ast.unparse(node) for node in definitions]]
    return "\n".join(guarded) + "\n", definitions


def contract(assignment):
    """{component: (kind, name, node)} of the graded components: the solution's def or class."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    graded = {c for c, cells in component_cells(assignment).items() if cells}
    found = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id not in graded:
            continue
        tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == grade_id)
        found[grade_id] = node
    return found


def params(function, skip_self=False):
    """([names], number required, signature source) of a def."""
    args = function.args.args[1:] if skip_self else function.args.args
    names = [a.arg for a in args]
    return names, len(names) - len(function.args.defaults), ast.unparse(function.args)


def matches(book, name):
    b, n = book.lower(), name.lower()
    return (b == n or b.rstrip("s") == n.rstrip("s") or (len(b) == 1 and n.startswith(b))
            or book in SYNONYMS.get(name, ()))


def by_name(book, required, theirs):
    """{book parameter: contract parameter} by name, then the unmatched required ones in order."""
    mapping = {}
    for b in book:
        hit = next((n for n in theirs if matches(b, n) and n not in mapping.values()), None)
        if hit is not None:
            mapping[b] = hit
    free = [n for n in theirs if n not in mapping.values()]
    for b in book[:required]:
        if b not in mapping and free:
            mapping[b] = free.pop(0)
    return mapping


def mappings(book, required, theirs, their_required):
    """Candidate {book parameter: contract parameter} maps: by name, then argument orders."""
    named = by_name(book, required, theirs)
    found = [named]
    pool = theirs[:max(their_required, required)]
    for order in itertools.islice(itertools.permutations(pool, min(required, len(pool))), MAX_ORDERS):
        ordered = dict(zip(book[:required], order))
        ordered.update({b: n for b, n in named.items() if b not in ordered and n not in ordered.values()})
        found.append(ordered)
    unique = []
    for m in found:
        if set(book[:required]) <= set(m) and m not in unique:
            unique.append(m)
    return unique


def call(mapping):
    return ", ".join(f"{b}={n}" for b, n in mapping.items())


def returns_tuple(node):
    return any(isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) for n in ast.walk(node))


def function_adapters(book, theirs):
    names, required, _ = params(book)
    their_names, their_required, signature = params(theirs)
    found = []
    for m in mappings(names, required, their_names, their_required):
        for first in ([False, True] if returns_tuple(book) else [False]):
            result = "_r[0] if isinstance(_r, tuple) else _r" if first else "_r"
            found.append(f"def {theirs.name}({signature}):\n    _r = {book.name}({call(m)})\n    return {result}\n")
    return found


def method(node, name):
    return next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def contract_attributes(theirs):
    """[(attribute, constructor name)] that the solution's __init__ assigns to self."""
    init = method(theirs, "__init__")
    found = []
    for node in ast.walk(init) if init else ():
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                    found.append((target.attr, ast.unparse(node.value.func).split(".")[-1]))
    return found


ALIASES = '''
def _expose(self, wanted, made):
    """Expose the chapter's submodules under the contract's attribute names, matched by type in order."""
    import torch.nn as _nn
    slots = []
    for name, child in list(self.named_children()):
        if isinstance(child, _nn.ModuleList):
            slots += [(child, i, c) for i, c in enumerate(child)]
        else:
            slots.append((self, name, child))
    used = set()
    for attribute, kind in wanted:
        if attribute in self._modules or attribute in self.__dict__:
            continue
        for owner, key, child in slots:
            if id(child) in used:
                continue
            new = None
            bound = globals().get(kind)   # the class the notebook binds to that name now: the tests may swap in their own
            if type(child).__name__ == kind or (isinstance(bound, type) and isinstance(child, bound)):
                new = child
            elif kind in made and isinstance(child, made[kind][0]):
                new = made[kind][1]()
                if isinstance(owner, _nn.ModuleList):
                    owner[key] = new
                else:
                    setattr(owner, key, new)
            if new is not None:
                used.add(id(child))
                used.add(id(new))
                setattr(self, attribute, new)
                break
'''


def class_adapters(book, theirs):
    book_init, book_forward = method(book, "__init__"), method(book, "forward")
    their_init, their_forward = method(theirs, "__init__"), method(theirs, "forward")
    if book_init is None or their_init is None or their_forward is None:
        return []
    b_names, b_required, _ = params(book_init, skip_self=True)
    t_names, t_required, init_signature = params(their_init)
    init_map = by_name(b_names, b_required, t_names[1:])
    f_names, f_required, _ = params(book_forward, skip_self=True) if book_forward else ([], 0, "")
    g_names, g_required, forward_signature = params(their_forward)
    wanted = contract_attributes(theirs)
    made = {}
    kinds = {kind for _, kind in wanted}
    d_model, heads, d_ff = (next((n for n in t_names if n in names), "None")
                            for names in (("d_model",), ("num_heads",), ("d_ff",)))
    if "MultiHeadAttention" in kinds:
        made["MultiHeadAttention"] = f"(nn.MultiheadAttention, lambda: MultiHeadAttention({d_model}, {heads}))"
    if "PositionWiseFFN" in kinds:
        dropout = "dropout" if "dropout" in t_names else "0.0"
        made["PositionWiseFFN"] = f"(nn.Sequential, lambda: PositionWiseFFN({d_model}, {d_ff}, {dropout}))"
    made_source = "{" + ", ".join(f"{k!r}: {v}" for k, v in made.items()) + "}"
    attend = method(book, "attend")
    override = ("    def attend(self, module, queries, source, mask):\n"
                "        return module(queries, source, source, mask)[0]\n") if attend is not None else ""
    found = []
    for forward_map in mappings(f_names, f_required, g_names[1:], g_required - 1)[:3]:
        found.append(ALIASES + f"""
class {theirs.name}({book.name}):
    def __init__({init_signature}):
        super().__init__({call(init_map)})
        _expose(self, {wanted!r}, {made_source})

    def forward({forward_signature}):
        _r = super().forward({call(forward_map)})
        return _r[0] if isinstance(_r, tuple) else _r

{override}""")
    return found


def adapters(book, theirs):
    if isinstance(book, ast.FunctionDef) and isinstance(theirs, ast.FunctionDef):
        return function_adapters(book, theirs)
    if isinstance(book, ast.ClassDef) and isinstance(theirs, ast.ClassDef):
        return class_adapters(book, theirs)
    return []


def best_points(assignment, component, source, cells, prelude, candidates, points):
    """The most points any adapter earns for `component` (graded on its `cells` of the solution notebook
    `source`), and that adapter."""
    best, which = 0.0, None
    for adapter in candidates:
        notebook = with_cell_replaced(assignment, component, prelude + "\n" + adapter)
        try:
            verdicts = grade_in_process(notebook, source, only=cells, timeout=20)
        except Exception:
            continue
        earned = sum(points[g] for g, v in verdicts.items() if v.passed)
        if earned > best:
            best, which = earned, adapter
        if best == sum(points[g] for g in cells):
            break
    return best, which


def handed_over(path, components=None):
    """[(definition, component, earned, possible, adapter)] of a chapter, every pair tried (`components`: only these)."""
    assignment = CHAPTERS[path]
    prelude, definitions = chapter_definitions(path)
    points = max_points(assignment)
    source = nbformat.read(solution_path(assignment), as_version=4)
    cells_of = component_cells(assignment)
    found = []
    for component, theirs in contract(assignment).items():
        if components is not None and component not in components:
            continue
        cells = set(cells_of[component])
        possible = sum(points[g] for g in cells)
        for book in definitions:
            candidates = adapters(book, theirs)
            if candidates:
                earned, adapter = best_points(assignment, component, source, cells, prelude, candidates, points)
                found.append((book.name, component, earned, possible, adapter))
    return found


@pytest.mark.parametrize("path", list(CHAPTERS), ids=[p.name for p in CHAPTERS])
def test_no_chapter_definition_earns_half_of_a_component(path):
    assert CHAPTERS[path], f"{path.name} has no assignment"
    start = time.perf_counter()
    results = handed_over(path)
    print(f"{path.name}: {len(results)} (definition, component) pairs in {time.perf_counter() - start:.1f} s")
    for name, component, earned, possible, _ in results:
        if earned:
            print(f"  {name} as {component}: {earned:g} of {possible:g}")
    over = [(name, component, earned, possible, adapter) for name, component, earned, possible, adapter in results
            if earned >= possible / 2]
    assert not over, "a chapter's code passes a graded component behind a thin adapter:\n" + "\n".join(
        f"{name} as {component}: {earned:g} of {possible:g} points with\n{adapter}" for name, component, earned, possible, adapter
        in over)


class Renamed(ast.NodeTransformer):
    """A solution's definition as a chapter would disguise it: names, parameters and `self.` attributes renamed."""

    def __init__(self, names, attributes=None):
        self.names, self.attributes = names, attributes or {}

    def visit_Name(self, node):
        node.id = self.names.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.names.get(node.arg, node.arg)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            node.attr = self.attributes.get(node.attr, node.attr)
        return node


def planted(assignment, component, name, names, attributes=None, order=None):
    """The solution's definition of `component`, renamed `name`, its names and attributes renamed, the required
    parameters of its function (or of its class's __init__) put in `order` (indices)."""
    node = Renamed(names, attributes).visit(contract(assignment)[component])
    for definition in ast.walk(node):       # without docstrings, which name the parameters
        if isinstance(definition, (ast.FunctionDef, ast.ClassDef)) and len(definition.body) > 1 and isinstance(
                definition.body[0], ast.Expr) and isinstance(definition.body[0].value, ast.Constant):
            del definition.body[0]
    node.name = name
    function = method(node, "__init__") if isinstance(node, ast.ClassDef) else node
    if order is not None:
        skip = 1 if isinstance(node, ast.ClassDef) else 0
        args = function.args.args
        args[skip:skip + len(order)] = [args[skip + i] for i in order]
    return ast.unparse(node)


# The disguises of the self-check: a function with its parameters renamed beyond recognition and put in another
# order (found by the argument orders, its optional parameters by name and synonym), a class with its parameters
# renamed to synonyms and reordered and every attribute renamed (found by name, and by the submodules' types).
PLANTED = {
    "05_attention_at_scale": ("online_softmax_attention", "blocked_softmax",
                              {"query": "probe", "key": "index", "value": "memory", "block_size": "tile"}, None, (2, 1, 0)),
    "04_transformer": ("TransformerEncoderBlock", "Layer",
                       {"d_model": "width", "num_heads": "heads", "d_ff": "hidden", "dropout": "p_drop",
                        "norm_first": "pre_norm", "x": "tokens", "mask": "attn_mask"},
                       {"self_attn": "mixer", "ffn": "mlp", "norm1": "ln_a", "norm2": "ln_b", "dropout1": "drop_a",
                        "dropout2": "drop_b", "norm_first": "pre"}, (1, 0)),
}


@pytest.mark.parametrize("assignment", list(PLANTED))
def test_the_adapters_find_a_solution_in_a_chapter(assignment, tmp_path, monkeypatch):
    """The check is not vacuous: the solution's own code of a graded component, disguised in a chapter (renamed, its
    parameters and attributes renamed, its arguments reordered), earns the component's full points."""
    component, name, names, attributes, order = PLANTED[assignment]
    code = planted(assignment, component, name, names, attributes, order)
    for old in names:
        assert not re.search(rf"\b{old}\b", code), f"{old} is left in the planted code"
    chapter = tmp_path / f"{assignment[:2]}_planted.md"
    chapter.write_text("```{code-cell} ipython3\nimport math\nimport torch\nfrom torch import nn\n" + code + "\n```\n",
                       encoding="utf-8")
    monkeypatch.setitem(CHAPTERS, chapter, assignment)
    results = handed_over(chapter, components={component})
    assert [r[:2] for r in results] == [(name, component)]
    _, _, earned, possible, adapter = results[0]
    print(f"{name} as {component}: {earned:g} of {possible:g}, with\n{adapter}")
    assert possible > 0 and earned == possible, f"the planted {component} earns {earned:g} of {possible:g}"
