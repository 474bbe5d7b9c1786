"""The wire between the grader and a student's kernel: frames of a JSON header, a JSON table of tensors and
their raw bytes.

Both sides use this one file: the grader imports it, and the kernel receives its source inside the agent
cell (autograder/agent.py), so it imports nothing of the grader. What travels is data only, never a pickle:
a JSON header in a fixed schema (None, bools, ints, floats, strings the schema allows, lists, tuples,
dicts with string keys, dtypes, shapes, references to tensors and to objects that stay on the other
side), then the tensors: a JSON table of [name, dtype, shape] and their bytes, one after the other, in
the table's order (C order, this machine's byte order: both ends are the same machine). The reader of each
side checks sizes before it reads, and a table whose dtypes, shapes and sizes do not add up to the payload
exactly is refused; the grader's reader (`decode`, strict) refuses any value outside the schema. (Raw bytes,
not safetensors: its writer took 140 microseconds for three small tensors, this one 17, on each of the
thousands of calls a grading makes.)
"""
from __future__ import annotations

import json
import math
import select
import socket
import struct
import time
from typing import Any, Callable

import torch

MAGIC = b"AGW2"
PREFIX = struct.Struct("!4sIIQ")          # magic, header bytes, table bytes, payload bytes
MAX_HEADER = 4 * 2**20                     # bytes of JSON in one frame (the header; the table)
MAX_DIMS = 16                              # dimensions of one tensor
MAX_PAYLOAD = 512 * 2**20                  # bytes of tensors in one frame
MAX_DEPTH = 24                             # nesting of lists, tuples and dicts in a value
MAX_ITEMS = 100_000                        # elements of one list, tuple or dict
MAX_MESSAGE = 500                          # characters of an exception's message kept
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.bool)}


class WireError(Exception):
    """The other side sent something outside the protocol (or the connection broke)."""


def readable(fd: Any, seconds: float) -> bool:
    """Whether `fd` (a descriptor, or an object with fileno()) is readable, or closed, within `seconds`. poll, not
    select.select, which refuses a descriptor past 1023 (a worker with many files open, as a busy Dask worker)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(1000 * seconds))


def send(conn: socket.socket, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    body = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    table, chunks = [], []
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous()
        table.append([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)])
        chunks.append(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    listed = json.dumps(table, separators=(",", ":")).encode() if table else b""
    payload = b"".join(chunks)
    if len(body) > MAX_HEADER or len(listed) > MAX_HEADER or len(payload) > MAX_PAYLOAD:
        raise WireError(f"a frame of {len(body)} + {len(listed)} + {len(payload)} bytes is over the limits")
    conn.sendall(PREFIX.pack(MAGIC, len(body), len(listed), len(payload)) + body + listed + payload)


def _exactly(conn: socket.socket, size: int, end: float | None = None) -> bytes:
    chunks, left = [], size
    while left:
        if end is not None:   # the frame's time is over: socket.timeout
            conn.settimeout(max(0.001, end - time.monotonic()))
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise WireError("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(conn: socket.socket, max_payload: int = MAX_PAYLOAD,
            within: float | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The next frame; with `within`, all of it in that many seconds (else socket.timeout)."""
    end = None if within is None else time.monotonic() + within
    magic, header_size, table_size, payload_size = PREFIX.unpack(_exactly(conn, PREFIX.size, end))
    if magic != MAGIC or header_size > MAX_HEADER or table_size > MAX_HEADER or payload_size > max_payload:
        raise WireError(f"a frame outside the protocol ({magic!r}, {header_size}, {table_size}, {payload_size} bytes)")
    try:
        header = json.loads(_exactly(conn, header_size, end))
        table = json.loads(_exactly(conn, table_size, end)) if table_size else []
    except (ValueError, RecursionError):
        raise WireError("a frame's header or table is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("a frame's header is not an object")
    return header, _tensors(table, _exactly(conn, payload_size, end))


def _tensors(table: Any, payload: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a frame: `table` lists [name, dtype, shape] of each, `payload` their bytes in that order."""
    if not isinstance(table, list):
        raise WireError("a frame's table is not a list")
    tensors: dict[str, torch.Tensor] = {}
    offset = 0
    for entry in table:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and entry[0] not in tensors
                and entry[1] in DTYPES and isinstance(entry[2], list) and len(entry[2]) <= MAX_DIMS
                and all(type(n) is int and 0 <= n <= MAX_PAYLOAD for n in entry[2])):
            raise WireError("a frame's table lists a tensor outside the schema")
        name, dtype, shape = entry[0], DTYPES[entry[1]], entry[2]
        size = math.prod(shape) * dtype.itemsize
        if offset + size > len(payload):
            raise WireError("a frame's tensors are larger than its payload")
        raw = torch.frombuffer(bytearray(payload[offset:offset + size]), dtype=torch.uint8) if size else \
            torch.empty(0, dtype=torch.uint8)
        # a bool travels as a byte: any byte but 0 is True (never a bool whose byte is neither 0 nor 1)
        tensors[name] = (raw != 0 if dtype == torch.bool else raw.view(dtype)).reshape(shape)
        offset += size
    if offset != len(payload):
        raise WireError("a frame's payload holds bytes that its table does not list")
    return tensors


class Encoder:
    """Encodes a value into the header's schema, collecting its tensors; `other(obj)` encodes what the
    schema does not know (a handle, a callback) or returns None to refuse it."""

    def __init__(self, other: Callable[[Any], dict[str, Any] | None]):
        self.tensors: dict[str, torch.Tensor] = {}
        self.other = other

    def tensor(self, value: torch.Tensor) -> dict[str, Any]:
        key = f"t{len(self.tensors)}"
        order = permutation_to_contiguous(value)
        if order is None:
            self.tensors[key] = value
            return {"tensor": key, "grad": bool(value.requires_grad)}
        # a permuted tensor (a transpose) travels contiguous, with the permutation that gives its layout back
        self.tensors[key] = value.permute(order)
        return {"tensor": key, "grad": bool(value.requires_grad), "perm": [order.index(i) for i in range(value.dim())]}

    def __call__(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("a value nested too deeply")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value if abs(value) < 2**63 else {"float": float(value)}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, torch.Tensor):
            if value.dtype not in DTYPES.values() or value.is_sparse or value.layout != torch.strided:
                raise WireError(f"a tensor of {value.dtype} ({value.layout}) cannot travel")
            return self.tensor(value)
        if isinstance(value, torch.dtype):
            return {"dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"device": str(value)[:40]}
        if isinstance(value, torch.Size):
            return {"size": [int(n) for n in value]}
        if isinstance(value, torch.Generator):   # travels as its state; the call's reply gives the state back
            return {"generator": self.tensor(value.get_state())}
        if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
            items = [self(v, depth + 1) for v in value]
            return items if isinstance(value, list) else {"tuple": items}
        if isinstance(value, dict) and type(value) is dict and all(isinstance(k, str) for k in value):
            return {"dict": [[k, self(v, depth + 1)] for k, v in value.items()]}
        encoded = self.other(value)
        if encoded is None:
            raise WireError(f"a value of type {type(value).__name__} cannot travel")
        return encoded


def decode(value: Any, tensors: dict[str, torch.Tensor], other: Callable[[dict[str, Any]], Any],
           depth: int = 0, items: list[int] | None = None) -> Any:
    """The value that `Encoder` encoded, checked against the schema; `other(record)` decodes references
    (handles, callbacks) or raises WireError."""
    items = [0] if items is None else items
    items[0] += 1
    if depth > MAX_DEPTH or items[0] > MAX_ITEMS:
        raise WireError("a value too large or nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, tensors, other, depth + 1, items) for v in value]
    if not isinstance(value, dict) or len(value) > 3:
        raise WireError("a value outside the schema")
    if set(value) in ({"tensor", "grad"}, {"tensor", "grad", "perm"}) and isinstance(value["tensor"], str) \
            and isinstance(value["grad"], bool):
        if value["tensor"] not in tensors:
            raise WireError("a reference to a tensor that did not travel")
        tensor = tensors[value["tensor"]]
        if "perm" in value:
            perm = value["perm"]
            if not (isinstance(perm, list) and sorted(perm) == list(range(tensor.dim()))):
                raise WireError("a permutation outside the schema")
            tensor = tensor.permute(perm)
        return tensor.requires_grad_() if value["grad"] and tensor.is_floating_point() else tensor
    if set(value) == {"tuple"} and isinstance(value["tuple"], list):
        return tuple(decode(v, tensors, other, depth + 1, items) for v in value["tuple"])
    if set(value) == {"dict"} and isinstance(value["dict"], list):
        pairs = value["dict"]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise WireError("a dict outside the schema")
        return {k: decode(v, tensors, other, depth + 1, items) for k, v in pairs}
    if set(value) == {"float"} and value["float"] in ("nan", "inf", "-inf"):
        return float(value["float"])
    if set(value) == {"float"} and isinstance(value["float"], float):
        return value["float"]
    if set(value) == {"dtype"} and value["dtype"] in DTYPES:
        return DTYPES[value["dtype"]]
    if set(value) == {"device"} and value["device"] in ("cpu", "meta"):   # the kernel and the grader have no other
        return torch.device(value["device"])
    if set(value) == {"size"} and isinstance(value["size"], list) and all(type(n) is int for n in value["size"]):
        return torch.Size(value["size"])
    if set(value) == {"generator"} and isinstance(value["generator"], dict):
        state = decode(value["generator"], tensors, other, depth + 1, items)
        if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and state.dim() == 1):
            raise WireError("a generator's state outside the schema")
        generator = torch.Generator()
        try:
            generator.set_state(state.detach())
        except RuntimeError:
            raise WireError("a generator's state outside the schema") from None
        return generator
    return other(value)


def permutation_to_contiguous(value: torch.Tensor) -> list[int] | None:
    """The order of dimensions that makes a non-contiguous tensor contiguous (a transposed or permuted one),
    or None when it is contiguous already or is no permutation of a contiguous tensor (then it travels
    contiguous, with its values)."""
    if value.is_contiguous() or value.dim() < 2:
        return None
    order = sorted(range(value.dim()), key=lambda i: (-value.stride()[i], i))
    return order if value.permute(order).is_contiguous() else None


def flatten(value: Any, out: list[torch.Tensor]) -> Any:
    """The shape of a (nested tuple/list) value with its tensors taken out, in order, into `out`."""
    if isinstance(value, torch.Tensor):
        out.append(value)
        return ("t",)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [flatten(v, out) for v in value])
    return ("v", value)


def rebuild(shape: Any, tensors: list[torch.Tensor]) -> Any:
    """The value `flatten` took apart, with `tensors` put back in order."""
    if shape[0] == "t":
        return tensors.pop(0)
    if shape[0] in ("tuple", "list"):
        items = [rebuild(s, tensors) for s in shape[1]]
        return tuple(items) if shape[0] == "tuple" else items
    return shape[1]


def error_record(error: BaseException) -> dict[str, Any]:
    """What an exception becomes on the wire: its type's name, the nearest built-in exception it derives from
    (so that `except ValueError` catches a student's ValueError, or a subclass of it), a capped message."""
    import builtins
    base = next((k.__name__ for k in type(error).__mro__ if getattr(builtins, k.__name__, None) is k), "Exception")
    return {"type": type(error).__name__[:100], "base": base, "message": str(error)[:MAX_MESSAGE]}
