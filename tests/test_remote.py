"""The wire and the proxies (autograder/wire.py, agent.py, remote.py), in-process: the agent answers on one
end of a socket pair for a namespace where a notebook's code ran, as it does in a kernel, and the grader's
proxies call it. What a hidden test does with a student's function or module must behave as it would
with the object itself; what the kernel sends must be data of the schema, or nothing."""
import json
import socket
import struct
import threading
import time

import pytest
import torch
from torch import nn

from autograder import agent, verdicts, wire
from autograder.remote import KeptProxy, KernelGone, Remote, RemoteError

pytestmark = pytest.mark.unit
KEY = "_kept_test"

STUDENT = '''
import dataclasses
import torch
from torch import nn

def helper(x):
    return x * 2

def double_plus(x, y=1.0):
    return helper(x) + y

def looped(x):
    out = []
    for row in x:
        out.append(row * 2)
    return torch.stack(out)

def raises(x):
    raise ValueError("no " * 400)

def several(x):
    return {"a": x.double(), "b": (x.long(), None, 3, 2.5, float("nan")), "c": x > 0, "d": x.shape, "e": x.dtype}

class Tiny(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.blocks = nn.ModuleList([nn.LayerNorm(d), nn.Linear(d, d, bias=False)])
        self.scale = 3
        self.register_buffer("offset", torch.zeros(d))

    def forward(self, x):
        return self.blocks[1](self.blocks[0](self.proj(x))) * self.scale + self.offset

class Tied(nn.Module):
    def __init__(self, v, d):
        super().__init__()
        self.embed = nn.Embedding(v, d)
        self.head = nn.Linear(d, v, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, idx):
        return self.head(self.embed(idx))

class Inner(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        return self.lin(x) * 100            # the student's (wrong) inner module

class Outer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.inner = Inner(d)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x):
        return self.out(self.inner(x))

class MyError(ValueError):
    pass

def picky(x):
    if x.sum() < 0:
        raise MyError("negative")
    raise TypeError("never positive")

def in_place(x):
    x.mul_(2)
    return x.is_contiguous()

def on(n, device=None):
    return torch.ones(n, device=device), torch.zeros(1).device

def read(m, x):
    return m.W(x) * m.k, m.W.weight

def fill(cache, x):
    cache.update(x)
    return cache.update(x * 2)

class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = self.a

    def forward(self, x):
        return self.b(self.a(x))

    def double_it(self, x):
        return 2 * x

untraced = torch.relu

from IPython.core.history import HistoryOutput as _Record

def chatty(x):
    # no loop of its own; the library runs code it generated at run time (a dataclass's __init__) once per row,
    # as IPython's history does, when this prints, as often as the timing of the kernel's output threads has it
    _records = list(map(_Record, ["out_stream"] * x.shape[0], [{"stream": []}] * x.shape[0]))
    return x * 2

@dataclasses.dataclass
class Point:
    x: float

def own_records(x):
    return list(map(Point, x.tolist()))

def train(model, batches, steps):
    """A student's training loop: it needs grad mode, and leaves its trained values in the model."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _, x in zip(range(steps), batches):
        loss = (model(x) - 1.0).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, torch.is_grad_enabled()

def decode_with(model, x, generator=None):
    """A student's decoding loop over the test's model: its layers as a sequence, caches of the course's kind."""
    caches = [Cache() for _ in model.layers]
    assert len(model.layers) == 2 and model.layers[-1] is list(model.layers)[1]
    assert isinstance(model.layers, nn.ModuleList) and isinstance(model.layers[0], nn.Linear)   # torch.nn's own, there too
    with torch.no_grad():
        out = model(x, caches)
    return out, torch.multinomial(torch.ones(3, 5), 4, replacement=True, generator=generator)

def draw_all(batches):
    """A student's loop over the test's stream of batches."""
    first = next(batches)
    return [first] + [b for b in batches]

def flip_mode(model, fail=False):
    was = model.training
    model.eval()
    try:
        if fail:
            raise ValueError("on purpose")
        return was
    finally:
        model.train(was)

def uses_given(x):
    """Calls the course's given code (a name no solution cell defines)."""
    return given_twice(x) + 1

def given_twice(x):
    return 2 * x

class Cache:
    def __init__(self):
        self.items = []

    def update(self, x):
        self.items.append(x)
        return torch.cat(self.items)

    def __len__(self):
        return len(self.items)
'''
NAMES = {"solution": ["helper", "double_plus", "looped", "raises", "several", "Tiny", "Tied", "Inner", "Outer",
                      "picky", "in_place", "on", "read", "fill", "Shared", "Cache", "untraced", "chatty",
                      "own_records", "train", "decode_with", "draw_all", "flip_mode", "uses_given"]}


@pytest.fixture
def remote():
    main = {"__name__": "__main__"}
    exec(STUDENT, main)
    main[KEY] = {cell: {n: main[n] for n in names} for cell, names in NAMES.items()}
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=agent.in_process, args=(main, KEY, theirs), daemon=True)
    thread.start()
    remote = Remote(ours, timeout=20)
    remote.names = {n: KeptProxy(remote, "solution", n) for n in NAMES["solution"]}
    remote.student_names = set(NAMES["solution"])
    yield remote
    wire.send(ours, {"op": "done"}, {})
    thread.join(5)
    ours.close()


def test_a_call_returns_the_grader_own_tensors_of_every_dtype(remote):
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(remote.names["double_plus"](x, y=2.0), x * 2 + 2.0)
    found = remote.names["several"](torch.tensor([-1.0, 2.0]))
    assert found["a"].dtype == torch.float64 and found["b"][0].dtype == torch.int64 and found["c"].dtype == torch.bool
    assert found["b"][1:4] == (None, 3, 2.5) and found["b"][4] != found["b"][4]
    assert found["d"] == torch.Size([2]) and found["e"] is torch.float32
    for dtype in (torch.bfloat16, torch.float16, torch.int32, torch.uint8):
        assert remote.names["helper"](torch.ones(2, dtype=dtype)).dtype == dtype


def test_gradients_flow_through_a_call_as_through_a_local_function(remote):
    x = torch.randn(5, requires_grad=True)
    (remote.names["double_plus"](x) * torch.arange(5.0)).sum().backward()
    assert torch.allclose(x.grad, 2 * torch.arange(5.0))


def test_a_name_rebound_to_a_reference_is_a_call_back_with_its_gradient(remote):
    remote.names["helper"] = lambda x: x * 10          # what a test's isolation does
    x = torch.randn(4, requires_grad=True)
    out = remote.names["double_plus"](x)
    assert torch.allclose(out, x * 10 + 1)
    out.sum().backward()
    assert torch.allclose(x.grad, torch.full((4,), 10.0))


def test_a_module_is_seen_through_a_mirror(remote):
    module = remote.names["Tiny"](4)
    assert isinstance(module.proj, nn.Linear) and isinstance(module.blocks[0], nn.LayerNorm)
    assert not isinstance(module, nn.Linear)
    assert module.proj.in_features == 4 and module.blocks[1].bias is None and module.scale == 3
    assert [n for n, _ in module.named_parameters()] == ["proj.weight", "proj.bias", "blocks.0.weight",
                                                          "blocks.0.bias", "blocks.1.weight"]
    with torch.no_grad():                              # a test sets weights in place: the kernel gets them
        module.proj.weight.copy_(torch.eye(4))
        module.proj.bias.zero_()
        module.blocks[1].weight.copy_(torch.eye(4))
    x = torch.randn(2, 4)
    expected = torch.nn.functional.layer_norm(x, (4,)) * 3
    assert torch.allclose(module(x), expected, atol=1e-5)
    module(x).pow(2).sum().backward()
    assert module.proj.weight.grad is not None and module.blocks[1].weight.grad.shape == (4, 4)
    module.double()
    assert module.proj.weight.dtype == torch.float64 and module(x.double()).dtype == torch.float64
    module.eval()
    assert module.training is False and module.blocks[0].training is False


def test_a_shared_parameter_stays_shared_in_the_mirror(remote):
    model = remote.names["Tied"](7, 3)
    assert model.head.weight is model.embed.weight
    assert len(list(model.parameters())) == 1
    model(torch.tensor([[1, 2]])).sum().backward()
    assert model.embed.weight.grad is not None


def test_an_object_that_stays_in_the_kernel_answers_its_methods(remote):
    cache = remote.names["Cache"]()
    cache.update(torch.ones(2))
    assert torch.equal(cache.update(torch.zeros(1)), torch.tensor([1.0, 1.0, 0.0]))
    assert len(cache) == 2


def test_the_student_errors_come_back_by_type_with_a_capped_message(remote):
    with pytest.raises(RemoteError) as caught:
        remote.names["raises"](torch.ones(1))
    assert caught.value.kind == "ValueError" and len(caught.value.text) <= wire.MAX_MESSAGE


def test_lines_are_counted_where_the_student_code_runs(remote):
    small, large = (torch.randn(2, 3),), (torch.randn(40, 3),)
    few, many = remote.names["looped"].lines(small, large)
    assert many > few + 20
    few, many = remote.names["double_plus"].lines(small, large)
    assert many == few


def test_code_a_library_generates_at_run_time_is_not_the_students(remote):
    """A correct function that prints in a kernel runs IPython's code, and code that IPython generated at run
    time (a dataclass's __init__, compiled from a string), as often as the timing of the kernel's output
    threads has it: counted, its lines made the loop check fail under load (a noisy notebook lost a point
    once in two gradings). Here the library runs it once per row, deterministically: not the student's
    lines. A dataclass of the student's own still counts."""
    small, large = (torch.randn(2, 3),), (torch.randn(40, 3),)
    few, many = remote.names["chatty"].lines(small, large)
    assert many == few, (few, many)
    few, many = remote.names["own_records"].lines(small, large)
    assert many > few + 20, (few, many)


# --- what the kernel may send: data of the schema, or nothing ---------------------------------------------
def _frame(header: bytes, payload: bytes = b"", magic: bytes = wire.MAGIC, table: bytes = b"") -> bytes:
    return wire.PREFIX.pack(magic, len(header), len(table), len(payload)) + header + table + payload


def _tensor_frame(table, payload: bytes) -> bytes:
    return _frame(b"{}", payload, table=json.dumps(table).encode())


@pytest.mark.parametrize("frame", [
    _frame(b"{}", magic=b"PKL\x00"),
    _frame(b"{}", magic=b"AGW1"),                                          # the wire of safetensors payloads
    _frame(b"[1, 2]"),
    _frame(b"not json"),
    _frame(b'{"value": 1}', b"\x80\x04pickle"),                            # bytes that no table lists
    wire.PREFIX.pack(wire.MAGIC, wire.MAX_HEADER + 1, 0, 0),
    wire.PREFIX.pack(wire.MAGIC, 2, wire.MAX_HEADER + 1, 0),
    wire.PREFIX.pack(wire.MAGIC, 2, 0, wire.MAX_PAYLOAD + 1),
    _frame(b"{}", table=b"not json"),
    _tensor_frame({"t0": ["float32", [1]]}, bytes(4)),                     # a table that is not a list
    _tensor_frame([["t0", "complex64", [1]]], bytes(8)),                   # a dtype outside the schema
    _tensor_frame([["t0", "float32", [-1]]], b""),                         # a negative size
    _tensor_frame([["t0", "float32", [1.5]]], bytes(6)),                   # a size that is no int
    _tensor_frame([["t0", "float32", [True]]], bytes(4)),                  # a bool for a size
    _tensor_frame([["t0", "float32", [1] * (wire.MAX_DIMS + 1)]], bytes(4)),
    _tensor_frame([["t0", "float32", [2]]], bytes(4)),                     # fewer bytes than listed
    _tensor_frame([["t0", "float32", [1]]], bytes(5)),                     # more bytes than listed
    _tensor_frame([["t0", "float32", [1]], ["t0", "float32", [1]]], bytes(8)),   # one name twice
    _tensor_frame([["t0", "float32", [1], "extra"]], bytes(4)),
    _tensor_frame([[0, "float32", [1]]], bytes(4)),                        # a name that is no string
    _tensor_frame([["t0", "float64", [2**40, 2**40]]], bytes(8)),          # sizes past any payload
])
def test_a_frame_outside_the_protocol_is_refused(frame):
    ours, theirs = socket.socketpair()
    theirs.sendall(frame + b"{}")
    theirs.close()
    with pytest.raises(wire.WireError):
        wire.receive(ours)


@pytest.mark.parametrize("value", [
    {"tensor": "t9", "grad": False},                           # a tensor that did not travel
    {"tensor": "t0", "grad": False, "extra": 1},               # unknown keys
    {"py/object": "os.system"},                                # anything else
    {"handle": 1, "kind": "module", "type": "X", "x": 1},      # a reference with more than the schema
    {"dict": [[1, 2]]},                                        # a key that is not a string
    {"dtype": "complex128"},
    json.loads("[" * 30 + "1" + "]" * 30),                     # too deep
])
def test_a_value_outside_the_schema_is_refused(value):
    remote = Remote(None, timeout=1)
    with pytest.raises(wire.WireError):
        remote.decode(value, {"t0": torch.zeros(1)})


def test_a_kernel_that_breaks_the_protocol_fails_the_call_not_the_grader():
    ours, theirs = socket.socketpair()
    remote = Remote(ours, timeout=5)
    proxy = KeptProxy(remote, "solution", "f")

    def liar():
        wire.receive(theirs)
        theirs.sendall(_frame(json.dumps({"value": {"py/reduce": "os.system"}}).encode()))
    threading.Thread(target=liar, daemon=True).start()
    with pytest.raises(KernelGone):
        proxy(torch.ones(1))
    with pytest.raises(KernelGone):                  # and every later call fails at once
        proxy(torch.ones(1))
    assert struct.calcsize("!4sIIQ") == wire.PREFIX.size


def test_a_frame_that_arrives_in_parts_is_read_whole():
    """A reply whose bytes pause half-way (a loaded machine, a large tensor) is read to its end, even when the pause
    outlasts the wait for a frame (the call's time, at most 1 s at a time): the rest of it is never read as a frame
    of its own, and a reply begun in time is not lost."""
    main = {"__name__": "__main__"}
    exec(STUDENT, main)
    main[KEY] = {"solution": {"double_plus": main["double_plus"]}}
    ours, relay_in = socket.socketpair()
    relay_out, agents = socket.socketpair()
    threading.Thread(target=agent.in_process, args=(main, KEY, agents), daemon=True).start()

    def relay():   # the grader's requests go through; the agent's first reply stops 2 bytes into its header
        header, tensors = wire.receive(relay_in)
        wire.send(relay_out, header, tensors)
        reply = relay_out.recv(1 << 20)
        relay_in.sendall(reply[:wire.PREFIX.size + 2])
        time.sleep(0.35)
        relay_in.sendall(reply[wire.PREFIX.size + 2:])
        header, tensors = wire.receive(relay_in)   # done
        wire.send(relay_out, header, tensors)
    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    remote = Remote(ours, timeout=0.2)
    assert torch.equal(KeptProxy(remote, "solution", "double_plus")(torch.ones(2)), torch.full((2,), 3.0))
    wire.send(ours, {"op": "done"}, {})
    thread.join(5)


def test_a_frame_that_never_ends_costs_the_kernel_not_the_grader(monkeypatch):
    """A kernel that begins a reply and stops (or trickles it) is taken for gone once the frame's time is over."""
    from autograder import remote as remote_module
    monkeypatch.setattr(remote_module, "FRAME_SECONDS", 0.1)
    ours, theirs = socket.socketpair()
    remote = Remote(ours, timeout=5)

    def stalls():
        wire.receive(theirs)
        theirs.sendall(_frame(b'{"value": 1}')[:wire.PREFIX.size + 3])
    threading.Thread(target=stalls, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KernelGone):
        KeptProxy(remote, "solution", "f")(torch.ones(1))
    assert time.monotonic() - started < 3


def test_a_connection_on_a_descriptor_past_1023_is_read():
    """A worker with many files open (a Dask worker's connections) holds the kernel's socket on a high descriptor:
    the grader still waits on it (select.select refuses one past 1023)."""
    import os
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2100:
        pytest.skip(f"this machine allows {hard} open files, not the 2100 the test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2100), hard))
    main = {"__name__": "__main__"}
    exec(STUDENT, main)
    main[KEY] = {"solution": {"double_plus": main["double_plus"]}}
    low, theirs = socket.socketpair()
    os.dup2(low.fileno(), 2000)
    low.close()
    ours = socket.socket(fileno=2000)
    thread = threading.Thread(target=agent.in_process, args=(main, KEY, theirs), daemon=True)
    thread.start()
    try:
        remote = Remote(ours, timeout=5)
        assert torch.equal(KeptProxy(remote, "solution", "double_plus")(torch.ones(2)), torch.full((2,), 3.0))
    finally:
        wire.send(ours, {"op": "done"}, {})
        thread.join(5)
        ours.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_every_dtype_and_layout_travels_as_it_was():
    """What one side sends, the other receives: every dtype of the schema, a scalar, an empty tensor, a transposed or
    offset view (contiguous on arrival), and a bool whose byte is neither 0 nor 1 arrives as True."""
    ours, theirs = socket.socketpair()
    sent = {f"t{i}": t for i, t in enumerate([
        torch.randn(2, 3), torch.tensor(3.5, dtype=torch.float64), torch.ones(2, 2, dtype=torch.bool), torch.randn(3, 4).t(),
        torch.zeros(0, 5), torch.randn(4, dtype=torch.bfloat16), torch.randn(3, dtype=torch.float16), torch.arange(5)[1:],
        torch.tensor([-1, 2], dtype=torch.int8), torch.tensor([250], dtype=torch.uint8), torch.tensor([7], dtype=torch.int16),
        torch.tensor([1 << 40]), torch.tensor([3], dtype=torch.int32), torch.randn(3, requires_grad=True)])}
    assert {t.dtype for t in sent.values()} == set(wire.DTYPES.values())
    wire.send(theirs, {"x": 1}, sent)
    header, received = wire.receive(ours)
    assert header == {"x": 1} and list(received) == list(sent)
    for name, tensor in sent.items():
        got = received[name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape and got.is_contiguous(), name
        assert torch.equal(got, tensor.detach()) and not got.requires_grad, name
    theirs.sendall(_tensor_frame([["t0", "bool", [3]]], bytes([0, 1, 7])))
    _, odd = wire.receive(ours)
    assert odd["t0"].tolist() == [False, True, True] and torch.equal(odd["t0"], torch.tensor([False, True, True]))


def test_the_global_generator_travels_with_each_call(remote):
    """Code that draws from torch's global generator draws in the kernel what it would draw here: a test
    that seeds, builds a module and seeds again gets the same weights as a local module would."""
    torch.manual_seed(7)
    module = remote.names["Tiny"](3)
    after_remote = torch.rand(1)
    torch.manual_seed(7)
    local = nn.Linear(3, 3)
    nn.LayerNorm(3), nn.Linear(3, 3, bias=False)
    assert torch.equal(module.proj.weight, local.weight)
    assert torch.equal(torch.rand(1), after_remote)


class ReferenceInner(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.width = d

    def forward(self, x):
        return torch.tanh(self.lin(x))


def test_a_reference_class_is_built_by_the_grader_where_the_student_builds_it(remote):
    """Isolation of a module: the student's Outer builds Inner; the test binds Inner to a reference, which
    the grader builds and runs, its parameters living in the student's module as usual."""
    remote.names["Inner"] = ReferenceInner
    torch.manual_seed(3)
    outer = remote.names["Outer"](4)
    assert [n for n, _ in outer.named_parameters()] == ["inner.lin.weight", "inner.lin.bias", "out.weight"]
    assert isinstance(outer.inner, ReferenceInner) and outer.inner.width == 4
    x = torch.randn(2, 4, requires_grad=True)
    y = outer(x)
    expected = outer.out.weight @ torch.tanh(outer.inner.lin.weight @ x.detach().T + outer.inner.lin.bias[:, None])
    assert torch.allclose(y, expected.T, atol=1e-6)
    y.sum().backward()
    assert x.grad is not None and outer.inner.lin.weight.grad is not None and outer.out.weight.grad is not None
    local_x = x.detach().requires_grad_()
    w1 = outer.inner.lin.weight.detach().requires_grad_()
    (torch.tanh(local_x @ w1.T + outer.inner.lin.bias.detach()) @ outer.out.weight.detach().T).sum().backward()
    assert torch.allclose(outer.inner.lin.weight.grad, w1.grad, atol=1e-6)
    assert torch.allclose(x.grad, local_x.grad, atol=1e-6)
    outer.double()
    assert outer(x.double()).dtype == torch.float64


class ReferenceCache:
    def __init__(self):
        self.items = []

    def update(self, x):
        self.items.append(x)
        return torch.cat(self.items)

    def __len__(self):
        return len(self.items)


def test_an_object_of_the_grader_passed_to_the_student_is_called_back(remote):
    cache = ReferenceCache()
    out = remote.names["fill"](cache, torch.ones(2))
    assert torch.equal(out, torch.tensor([1.0, 1.0, 2.0, 2.0])) and len(cache) == 2


def test_a_call_can_be_watched_in_the_kernel(remote):
    out, watch = remote.names["double_plus"].watch(torch.ones(3), y=2.0)
    assert torch.equal(out, torch.full((3,), 4.0))
    assert any("mul" in op for op in watch.ops) and watch.count >= 2 and watch.peak >= 3 * 4


class _Meter:
    """A stand-in for the kernel's memory cgroup (autograder/sandbox.py MemoryMeter): counts what it was asked."""
    def __init__(self):
        self.calls = []

    def start(self):
        self.calls.append("start")

    def grown(self):
        self.calls.append("grown")
        return 12345


def test_the_grader_reads_the_kernels_memory_around_a_watched_call(remote):
    remote.meter = _Meter()
    _, watch = remote.names["double_plus"].watch(torch.ones(3), y=2.0)
    assert remote.meter.calls == ["start", "grown"] and watch.grown == 12345 and remote.flags == []
    remote.meter = None
    assert remote.names["double_plus"].watch(torch.ones(3))[1].grown is None


def test_a_kernel_that_skips_the_memory_measurement_is_flagged(remote):
    """The agent's pauses around a watched call are where the grader reads the cgroup: a kernel whose agent
    was changed not to pause gets no measurement, and a flag for a person."""
    remote.meter = _Meter()
    real_receive = remote._receive

    def skipping():   # as if the kernel never sent "measure" and "measured": drop them, answer nothing
        while True:
            header, tensors = real_receive()
            if header.get("kind") in ("measure", "measured"):
                wire.send(remote.conn, {}, {})
                continue
            return header, tensors
    remote._receive = skipping
    _, watch = remote.names["double_plus"].watch(torch.ones(3))
    assert watch.grown is None and remote.meter.calls == []
    assert remote.flags and "memory" in remote.flags[0]


def test_the_student_sources_are_read_from_the_notebook_not_the_kernel():
    import nbformat
    from autograder.verdicts import student_definitions
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\ndef f(x):\n    return np.sum(x)\nclass A:\n    pass"),
        nbformat.v4.new_code_cell("def f(x):\n    return x  # redefined"),
        nbformat.v4.new_code_cell("def broken(:"),
    ])
    found = student_definitions(notebook)
    assert found["f"] == "def f(x):\n    return x" and found["A"].startswith("class A")
    assert "broken" not in found


def test_a_student_exception_is_caught_as_its_builtin_kind(remote):
    with pytest.raises(ValueError):            # a subclass of ValueError of the student's
        remote.names["picky"](-torch.ones(1))
    with pytest.raises(TypeError):
        remote.names["picky"](torch.ones(1))


def test_what_the_student_changes_in_place_shows_in_the_test_tensor(remote):
    x = torch.arange(6.0).reshape(2, 3).T           # a transposed view: it stays non-contiguous in the kernel
    assert remote.names["in_place"](x) is False
    assert torch.equal(x, 2 * torch.arange(6.0).reshape(2, 3).T)


def test_a_module_of_the_test_passed_to_the_student_stands_in_the_kernel(remote):
    holder = nn.Module()
    holder.W = nn.Linear(3, 3)
    holder.k = 2
    x = torch.randn(4, 3, requires_grad=True)
    out, weight = remote.names["read"](holder, x)
    assert torch.allclose(out, holder.W(x) * 2) and torch.equal(weight, holder.W.weight)
    out.sum().backward()
    local = x.detach().requires_grad_()
    (holder.W(local) * 2).sum().backward()
    assert torch.allclose(x.grad, local.grad)


def test_a_module_is_an_instance_of_the_student_class_and_shared_submodules_are_one(remote):
    shared = remote.names["Shared"]()
    assert isinstance(shared, remote.names["Shared"]) and not isinstance(shared, remote.names["Tiny"])
    assert shared.a is shared.b and len(list(shared.parameters())) == 2
    assert getattr(shared, "missing", None) is None
    assert torch.equal(shared.double_it(torch.ones(2)), torch.full((2,), 2.0))


def test_a_device_travels_both_ways(remote):
    ones, device = remote.names["on"](2, device=torch.device("cpu"))
    assert device == torch.device("cpu") and torch.equal(ones, torch.ones(2))


def test_one_backward_through_several_calls_on_one_module(remote):
    module = remote.names["Tiny"](3)
    x = torch.randn(2, 3, requires_grad=True)
    (module.proj(x).sum() + module.proj(2 * x).sum()).backward()
    assert torch.allclose(module.proj.weight.grad, 3 * x.detach().sum(0).expand(3, 3))


@pytest.mark.unit
def test_the_tests_seeds_are_mixed_with_the_courses_secret():
    """Under a secret, `import torch` in the tests' namespace gives a torch whose seeds are mixed with it:
    the same secret gives the same inputs (a regrade), another gives others, and torch is otherwise itself."""
    def inputs(secret):
        namespace = {"__builtins__": verdicts.seeded_builtins(secret)}
        exec("import torch\nimport torch.nn.functional as F\nfrom torch import Generator\n"
             "a = torch.randn(3, generator=torch.Generator().manual_seed(7))\n"
             "b = torch.randn(3, generator=Generator().manual_seed(7))\n"
             "torch.manual_seed(7)\nc = torch.randn(3)\n"
             "same = F.softmax is torch.nn.functional.softmax and torch.Tensor is type(a)", namespace)
        assert namespace["same"] and torch.equal(namespace["a"], namespace["b"])
        return torch.cat([namespace["a"], namespace["c"]])
    plain = torch.cat([torch.randn(3, generator=torch.Generator().manual_seed(7)), torch.manual_seed(7) and torch.randn(3)])
    assert torch.equal(inputs("course A"), inputs("course A"))
    assert not torch.equal(inputs("course A"), inputs("course B"))
    assert not torch.equal(inputs("course A")[:3], plain[:3]) and not torch.equal(inputs("course A")[3:], plain[3:])
    assert verdicts.mixed_seed("course A", 7) == verdicts.mixed_seed("course A", 7) < 2 ** 63



def test_a_line_count_that_could_not_be_made_is_flagged(remote):
    """A call that runs no line of Python (tracing turned off, or a name bound to torch's own function) gives
    the loop check nothing to measure: a flag for a person."""
    few, many = remote.names["looped"].lines((torch.ones(2, 3),), (torch.ones(9, 3),))
    assert many > few > 0 and remote.flags == []
    assert remote.names["untraced"].lines((torch.ones(2),), (torch.ones(9),)) == (0, 0)
    assert len(remote.flags) == 1 and "could not be made" in remote.flags[0]


def test_the_tests_grad_mode_holds_in_the_kernel_and_a_training_loop_trains_the_tests_module(remote):
    """train_lm on the grader's own model: its parameters are trained in the kernel (gradients through the
    forward the grader runs) and come back into the test's module; under no_grad the kernel has none either."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    before = [p.detach().clone() for p in model.parameters()]
    batches = [torch.randn(6, 3) for _ in range(5)]
    losses, grad_mode = remote.names["train"](model, batches, 4)
    assert grad_mode is True and len(losses) == 4 and losses[-1] < losses[0]
    local = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():
        for p, b in zip(local.parameters(), before):
            p.copy_(b)
    optimizer = torch.optim.SGD(local.parameters(), lr=0.5)
    for x in batches[:4]:
        loss = (local(x) - 1.0).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for ours, theirs in zip(local.parameters(), model.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-6), "the trained values did not come back into the test's module"
    with torch.no_grad():
        with pytest.raises(RuntimeError):   # no grad mode in the test: none in the kernel
            remote.names["train"](model, batches, 1)


class _TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        self.seen = []

    def forward(self, x, caches=None):
        self.seen.append([type(c).__name__ for c in caches])
        for layer, cache in zip(self.layers, caches):
            x = layer(x)
            cache.update(x)
        return x


def test_a_tests_module_list_is_a_sequence_and_its_objects_come_back_as_its_own(remote):
    """generate over the grader's model: len/iter/index of its ModuleList, caches of the test's own class
    (a rebound name) handed back to the model's forward as the test's own objects, a generator advanced."""
    class RefCache:
        def __init__(self):
            self.n = 0

        def update(self, x):
            self.n += 1
            return x

        def __len__(self):
            return self.n
    remote.names["Cache"] = RefCache
    model = _TwoLayers()
    generator = torch.Generator().manual_seed(3)
    twin = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2)
    out, drawn = remote.names["decode_with"](model, x, generator=generator)
    assert model.seen == [["RefCache", "RefCache"]], "the caches did not come back as the test's own objects"
    assert torch.allclose(out, model.layers[1](model.layers[0](x)))
    assert torch.equal(drawn, torch.multinomial(torch.ones(3, 5), 4, replacement=True, generator=twin))
    assert torch.equal(generator.get_state(), twin.get_state()), "the generator did not come back advanced"


@pytest.mark.parametrize("record", [{"held": 999}, {"held": 1, "path": "nowhere"}, {"held": "1"},
                                    {"generator": {"tensor": "t0", "grad": False}}])
def test_a_reference_to_the_graders_objects_outside_what_it_holds_is_refused(record):
    remote = Remote(None, timeout=1)
    remote.held_objects[1] = nn.Linear(2, 2)
    with pytest.raises(wire.WireError):
        wire.decode(record, {"t0": torch.zeros(3)}, remote._decode_other)


def test_a_tests_iterator_is_drawn_from_in_order_and_ends(remote):
    stream = (torch.full((2,), float(i)) for i in range(4))
    drawn = remote.names["draw_all"](stream)
    assert [float(b[0]) for b in drawn] == [0.0, 1.0, 2.0, 3.0]
    assert next(stream, None) is None


def test_a_tests_module_keeps_its_mode_and_gets_back_the_students_even_when_the_call_raises(remote):
    model = nn.Linear(2, 2)
    model.eval()
    assert remote.names["flip_mode"](model) is False and not model.training
    model.train()
    with pytest.raises(ValueError):
        remote.names["flip_mode"](model, fail=True)
    assert model.training, "the mode the student's finally restored did not come back with the error"


def test_a_name_of_the_courses_given_code_rebound_by_a_test_reaches_the_kernel(remote):
    """A test isolates a component from the course's given code too (chapter 5's KVCache in assignment 06)."""
    given = remote.names.get("given_twice")
    remote.course_names["given_twice"] = given
    x = torch.ones(2)
    assert torch.equal(remote.names["uses_given"](x), torch.full((2,), 3.0))    # not rebound: the kernel's own
    remote.names["given_twice"] = lambda t: 10 * t
    assert torch.equal(remote.names["uses_given"](x), torch.full((2,), 11.0))   # rebound: the test's reference


def test_a_reference_that_calls_the_kernel_back_gets_a_clear_error_not_a_desynchronised_wire(remote):
    """While the grader computes a call-back, the kernel waits for its answer: the grader refuses to send a request."""
    student_cache = remote.names["Cache"]()          # an object of the kernel's

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

        def forward(self, x, caches=None):
            student_cache.update(x)                    # the kernel, asked while it waits for this answer
            return x
    with pytest.raises(Exception, match="call-back"):
        remote.names["decode_with"](Model(), torch.zeros(1, 2))
    assert torch.equal(remote.names["helper"](torch.ones(1)), torch.full((1,), 2.0)), "the wire is still in step"


def test_what_the_grader_says_of_a_lost_kernel_is_in_the_submissions_edition():
    """The phrase is the course's (zh/grader.yml); its technical detail is kept as it is."""
    from autograder.editions import Edition
    from autograder.remote import STOPPED

    def lost():
        raise KernelGone(STOPPED, "WireError: the connection closed")
    english = verdicts._run_cell("cell", "lost()", {"lost": lost})
    chinese = verdicts._run_cell("cell", "lost()", {"lost": lost}, Edition.ZH)
    assert (english.passed, english.error_type) == (chinese.passed, chinese.error_type) == (False, "KernelGone")
    assert english.message == "the kernel stopped answering (WireError: the connection closed)"
    assert chinese.message == "内核停止了响应（WireError: the connection closed）"
