"""Canary cells: code the grader runs after every block of test cells, before any student cell runs again.

A canary does two things:
1. The kernel forgets the tests that just ran: IPython's input and output history (`In`, `Out`, `_ih`,
   `_i3`, `_`, ...) and linecache's copies of the cells are cleared, so that no later student cell can
   read a hidden test's source.
2. It checks that known-false comparisons are still false (torch.allclose, torch.equal, tensor ==,
   isnan, isfinite, assert_close, builtins), that no code of the student's sits in IPython's machinery
   (input or AST transformers, event hooks, custom exception handlers, trace functions), and then
   raises with what was tampered with. If nothing is
   raised, the kernel swallows exceptions. Names, shapes, dtypes and values are drawn afresh for every
   run from a secret nonce, so that a patch which behaves only on small or known inputs (the canary's)
   is caught as well, and the result carries the nonce, so that it cannot be forged by a hook.
"""
import random
import secrets
import string
from dataclasses import dataclass
from typing import Any

FORGET = """
try:
    import linecache as {m}
    {ip} = get_ipython()
    {h} = {ip}.history_manager
    for {x} in ({h}.input_hist_parsed, {h}.input_hist_raw):
        {x}[:] = [""] * len({x})
    {h}.output_hist.clear()
    {h}.output_hist_reprs.clear()
    for {x} in [k for k in {ip}.user_ns if k in ("_", "__", "___") or (k[:2] == "_i" and k[2:].strip("i").isdigit()
                                           or k in ("_i", "_ii", "_iii")) or (k[:1] == "_" and k[1:].isdigit())]:
        {ip}.user_ns[{x}] = "" if {x}.startswith("_i") else None
    for {x} in [k for k in {m}.cache if k.startswith("<ipython-input") or "ipykernel_" in k]:
        del {m}.cache[{x}]
    del {ip}, {h}, {x}, {m}
except Exception:
    pass
"""


@dataclass(frozen=True)
class Canary:
    nonce: str
    source: str

    @property
    def marker(self) -> str:
        return f"autograder canary {self.nonce}:"

    def verdict(self, cell: dict[str, Any]) -> list[str] | None:
        """What the executed canary cell says was tampered with ([] if nothing); None if it never ran."""
        if cell.get("execution_count") is None:
            return None
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            return ["exceptions are swallowed (a cell that raises shows no error)"]
        message = str(errors[0].get("evalue", ""))
        if self.marker not in message:
            return ["the canary's result was altered (its error is not the one it raised)"]
        listed = message.split(self.marker, 1)[1]
        return [part.strip() for part in listed.split(";") if part.strip()]


def new_canary(nonce: str | None = None) -> Canary:
    """A canary cell with names, shapes, dtypes and values of its own (drawn from `nonce`)."""
    nonce = nonce or secrets.token_hex(8)
    rng = random.Random(nonce)
    used: set[str] = set()

    def name() -> str:
        while True:
            candidate = "_" + "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
            if candidate not in used:
                used.add(candidate)
                return candidate

    t, found, ok, a, b, c, gen, ip, f, sys_ = (name() for _ in range(10))
    dims = [rng.randint(1, 9) for _ in range(rng.randint(1, 4))]
    while _numel(dims) < 200:   # the hidden tests' sizes: a patch keyed on size cannot single out the canary
        dims[rng.randrange(len(dims))] *= rng.randint(2, 5)
    dtype = rng.choice(["float32", "float64"])
    where = [rng.randrange(d) for d in dims]
    k = rng.randint(2, 9)
    lines = [FORGET.format(m=name(), ip=name(), h=name(), x=name()),
             f"import torch as {t}",
             f"{found} = []",
             f"{gen} = {t}.Generator().manual_seed({rng.randrange(2**31)})",
             f"{a} = {t}.randn({tuple(dims)}, generator={gen}, dtype={t}.{dtype}) * {rng.uniform(0.5, 50):.3f}",
             f"{b} = {a}.clone()",
             f"{b}[{tuple(where)}] += {rng.uniform(0.5, 5):.3f}",
             f"{c} = {a}.clone()",
             f"{ip} = get_ipython()",
             f"import sys as {sys_}"]
    own = "('IPython', 'ipykernel', 'matplotlib_inline', 'matplotlib', 'jupyter_client', 'traitlets')"
    module = f"str(getattr({f}, '__module__', None) or type({f}).__module__)"
    checks = [
        ("torch.allclose was replaced", f"{t}.allclose({a}, {b})"),
        ("torch.equal was replaced", f"{t}.equal({a}, {b})"),
        ("Tensor comparisons or Tensor.all were replaced", f"bool(({a} == {b}).all())"),
        ("Tensor comparisons or Tensor.any were replaced", f"not bool(({a} != {b}).any())"),
        ("Tensor arithmetic was replaced", f"float(({a} - {b}).abs().max()) == 0.0"),
        ("torch.isnan was replaced", f"({c}.__setitem__({tuple(where)}, float('nan')), not bool({t}.isnan({c}).any()))[1]"),
        ("torch.isfinite was replaced", f"({c}.__setitem__({tuple(where)}, float('inf')), bool({t}.isfinite({c}).all()))[1]"),
        ("IPython's input or AST transformers were changed",
         f"any(not {module}.startswith({own}) for {f} in list({ip}.input_transformers_post) + "
         f"list({ip}.input_transformers_cleanup) + list({ip}.ast_transformers))"),
        ("IPython event hooks were registered",
         f"any(not {module}.startswith({own}) for {f} in sum(map(list, {ip}.events.callbacks.values()), []))"),
        ("exceptions are intercepted (set_custom_exc)", f"bool({ip}.custom_exceptions)"),
        ("a trace or profile function is set", f"{sys_}.gettrace() is not None or {sys_}.getprofile() is not None"),
        ("builtins were replaced", f"all([True] * {k} + [False]) or isinstance({k}, str) or abs(-{k}) != {k} "
                                   f"or len([0] * {k}) != {k} or sum([1] * {k}) != {k} or not any([False, True])"),
    ]
    rng.shuffle(checks)
    for reason, check in checks:
        lines.append(f"try:\n    {ok} = {check}\nexcept Exception:\n    {ok} = True\n"
                     f"if {ok}:\n    {found}.append({reason!r})")
    lines.append(f"try:\n    {t}.testing.assert_close({a}, {b})\n    {found}.append('torch.testing.assert_close was replaced')\n"
                 f"except AssertionError:\n    pass")
    canary = Canary(nonce, "")
    lines.append(f"raise RuntimeError({canary.marker!r} + '; '.join({found}))")
    return Canary(nonce, "\n".join(lines))


def _numel(dims: list[int]) -> int:
    total = 1
    for d in dims:
        total *= d
    return total
