"""The grader's side of the wire: proxies that stand for the student's objects in the grader's own process.

A hidden test is ordinary test code. The grader runs it in its own clean process (autograder/verdicts.py)
with the student's names bound to proxies: calling one sends the call to the kernel (autograder/agent.py)
and returns what came back, as tensors of the grader's own. A module the student built stays in the
kernel; its proxy carries a local mirror of its parameters and buffers (real `nn.Parameter`s, shared
where the student's are shared), its submodules' types and simple attributes, so that a test reads
`module.W_q.weight`, checks `isinstance(module.W_q, nn.Linear)`, or changes a weight in place, as it would
with a local module; the mirror is sent before each call and refreshed after it. Gradients flow through
a call as through any torch function (a custom autograd Function whose backward asks the kernel), and
reach the mirror's parameters as `.grad`. A name the test rebound to a reference (isolation) is bound in
the kernel, for the length of one call, to a stub that asks the grader to compute it.
"""
from __future__ import annotations

import collections.abc
import socket
from dataclasses import dataclass
import time
from typing import Any, Callable, Iterator

import torch
from torch import nn

from autograder import wire


class RemoteError(Exception):
    """The student's code raised, in the kernel: its type's name and a capped message. `remote_error` makes
    one that is also an instance of the built-in exception the student's derives from."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind, self.text = kind, message
        self.reply: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None


_REMOTE_ERRORS: dict[str, type] = {}
FRAME_SECONDS = 30.0   # the longest a frame that has begun may take to arrive whole: longer, and the kernel is gone
CATCHABLE = (ArithmeticError, AttributeError, IndexError, KeyError, LookupError, NotImplementedError, RuntimeError,
             TypeError, ValueError, ZeroDivisionError, OverflowError, AssertionError)


def remote_error(kind: str, base: str, message: str) -> RemoteError:
    """A RemoteError that `except ValueError` (or the built-in `base` the student's exception derives from)
    catches, as it would catch the exception itself."""
    import builtins
    builtin = getattr(builtins, base, None)
    if not (isinstance(builtin, type) and issubclass(builtin, CATCHABLE)):
        return RemoteError(kind, message)
    if base not in _REMOTE_ERRORS:
        _REMOTE_ERRORS[base] = type(f"Remote{base}", (RemoteError, builtin), {"__init__": RemoteError.__init__})
    return _REMOTE_ERRORS[base](kind, message)  # type: ignore[no-any-return]


# What the feedback says when the kernel is gone (in the submission's edition: verdicts.py); {detail} is technical,
# kept as it is.
STOPPED = "the kernel stopped answering ({detail})"
OUTSIDE = "the kernel answered outside the protocol ({detail})"
NO_AGENT = "the kernel did not start the grader's agent (did the notebook's code end it?)"


class KernelGone(Exception):
    """The kernel stopped answering (it died, hung past its limit, or broke the protocol): `template` (STOPPED,
    OUTSIDE or NO_AGENT) filled with `detail`."""

    def __init__(self, template: str, detail: str = ""):
        super().__init__(template.format(detail=detail))
        self.template, self.detail = template, detail


class OutOfTime(Exception):
    """The student's code ran past the time of its request (the kernel was interrupted: `seconds` is that time),
    or the time the grader gave a run of checks (`Remote.deadline`) is over: no further request is sent."""

    def __init__(self, message: str, seconds: float | None = None):
        super().__init__(message)
        self.seconds = seconds


class Remote:
    """The connection to one kernel's agent, and what it holds: the proxies of its objects, the graphs of
    calls whose backward may come, and the grader's call-backs for the current request."""

    def __init__(self, conn: socket.socket | None, timeout: float, interrupt: Callable[[], None] | None = None,
                 meter: Any = None):
        self.conn, self.timeout, self.interrupt = conn, timeout, interrupt
        self.meter = meter    # the kernel's memory, read from its cgroup (autograder/sandbox.py MemoryMeter; None: none)
        self.grown: int | None = None     # bytes the kernel's memory grew by during the last watched call
        self.flags: list[str] = []        # what a person should look at (a measurement the kernel skipped)
        self.proxies: dict[int, Any] = {}
        self.callbacks: dict[int, Callable[..., Any]] = {}
        self.callback_graphs: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.held_classes: dict[int, type] = {}   # the grader's classes the kernel may build (references)
        self.held_objects: dict[int, Any] = {}    # what it built, and objects of the grader passed to it
        self.names: dict[str, Any] = {}      # the test's namespace (verdicts.py), read at each call
        self.student_names: set[str] = set()  # the names of the solution cells
        self.course_names: dict[str, Any] = {}  # what the course's given code defines (chapter 5's KVCache, say)
        self.serving = 0                      # > 0 while the grader computes a call-back of the kernel
        self.sources: dict[str, str] = {}     # the student's top-level definitions, by name (their notebook's text)
        self.gone: KernelGone | None = None   # why every later request fails at once
        self.deadline: float | None = None    # time.monotonic() after which no request is sent (None: no limit)
        self.interrupted = False              # the current request ran past its time

    # --- requests ----------------------------------------------------------------------------------------
    def request(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if self.gone:
            raise KernelGone(self.gone.template, self.gone.detail)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime("the time for these checks is over")
        if self.serving:   # the kernel waits for our answer: a request now would be read as that answer
            raise RuntimeError("a reference of the tests used an object of the student's kernel while computing a "
                               "call-back of it (pass the test's own objects, or rebind the name that makes them)")
        assert self.conn is not None
        self.interrupted = False
        try:
            wire.send(self.conn, header, tensors)
            while True:
                reply, got = self._receive()
                kind = reply.get("kind")
                if kind == "callback":
                    self._answer_callback(reply, got)
                elif kind == "construct":
                    self._answer_construct(reply, got)
                elif kind == "held":
                    self._answer_held(reply, got)
                elif kind == "adopt":
                    self._answer_adopt(reply, got)
                elif kind == "callback_backward":
                    self._answer_callback_backward(reply, got)
                elif kind in ("measure", "measured"):
                    self._answer_measure(kind)
                else:
                    break
        except (wire.WireError, OSError, socket.timeout) as error:
            raise self._lost(STOPPED, f"{type(error).__name__}: {error}") from None
        finally:
            self.callbacks.clear()   # a call-back expires when its request returns
        if self.interrupted:
            raise OutOfTime(f"your code ran longer than {self.timeout:g} s", self.timeout)
        if "error" in reply:
            record = reply["error"]
            if not (isinstance(record, dict) and isinstance(record.get("type"), str) and isinstance(record.get("message"), str)):
                raise KernelGone(OUTSIDE, "its error")
            raised = remote_error(record["type"][:100], str(record.get("base", ""))[:100], record["message"][:wire.MAX_MESSAGE])
            raised.reply = (reply, got)   # what a failed call still gives back (autograder/agent.py given_back)
            raise raised
        return reply, got

    def _lost(self, template: str, detail: str) -> KernelGone:
        """The kernel is gone from now on (every later request fails at once): the error to raise."""
        self.gone = KernelGone(template, detail)
        return KernelGone(template, detail)

    def _receive(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        assert self.conn is not None
        deadline = time.monotonic() + self.timeout
        if self.deadline is not None:
            deadline = min(deadline, max(self.deadline, time.monotonic() + 0.5))
        interrupted = False
        while True:
            if wire.readable(self.conn, max(0.05, min(1.0, deadline - time.monotonic()))):
                # a frame has begun (or the connection ended): it is read whole (a wait inside it would leave the
                # rest to be read as a frame)
                return wire.receive(self.conn, within=FRAME_SECONDS)
            if time.monotonic() < deadline:
                continue
            if interrupted or self.interrupt is None:
                raise socket.timeout("the kernel did not answer in time")
            self.interrupt()        # the student's code runs past the limit: KeyboardInterrupt in the kernel
            interrupted = self.interrupted = True
            deadline = time.monotonic() + 10

    def _answer_measure(self, kind: str) -> None:
        """The kernel is about to run a watched call ("measure": its inputs are decoded) or has just run it
        ("measured"): the grader reads the kernel's memory from its cgroup, then lets it go on."""
        if self.meter is not None:
            if kind == "measure":
                self.meter.start()
                self.grown = None
            else:
                self.grown = self.meter.grown()
        assert self.conn is not None
        wire.send(self.conn, {}, {})

    def _answer_callback(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """The student's code calls a name the test bound to a reference function: the grader computes it."""
        function = self.callbacks.get(header.get("callback"))  # type: ignore[arg-type]

        def run(args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, list[nn.Parameter]]:
            if function is None:
                raise RuntimeError("this call-back of the grader has expired")
            return function(*args, **kwargs), []
        self._answer_call(header, tensors, run)

    def _answer_call(self, header: dict[str, Any], tensors: dict[str, torch.Tensor],
                     run: Callable[[list[Any], dict[str, Any]], tuple[Any, list[nn.Parameter]]]) -> None:
        """Answer a call-back of the kernel: `run(args, kwargs)` gives the value and the parameters whose
        gradients a later backward may ask for, besides the call's tensors'. A failure of the reference is an
        answer too; only a frame outside the protocol ends the request."""
        assert self.conn is not None
        try:
            args, kwargs = self.decode(header.get("args"), tensors), self.decode(header.get("kwargs"), tensors)
            self._take_generator(header, tensors)
            grad = header.get("grad") is True
            self.serving += 1
            try:
                with torch.set_grad_enabled(grad):
                    value, params = run(args, kwargs)
            finally:
                self.serving -= 1
            encoder = wire.Encoder(self._encode_other)
            reply: dict[str, Any] = {"value": encoder(_detached(value)), "rng": encoder(torch.get_rng_state())}
            if grad:
                inputs = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)] + params
                outputs: list[torch.Tensor] = []
                wire.flatten(value, outputs)
                token = len(self.callback_graphs) + 1
                self.callback_graphs[token] = (inputs, outputs)
                reply["token"] = token
            wire.send(self.conn, reply, encoder.tensors)
        except wire.WireError:
            raise
        except Exception as error:
            wire.send(self.conn, {"error": wire.error_record(error)}, {})

    def _take_generator(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """The kernel's global generator, for the length of a call-back (the grader's is unused meanwhile)."""
        state = self.decode(header.get("rng"), tensors)
        if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8):
            raise wire.WireError("a call-back without the generator's state")
        torch.set_rng_state(state)

    def _answer_construct(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """The student's code builds one of the grader's classes (a reference): the grader builds and keeps it,
        and sends what the kernel needs to stand in for it (a module's parameters, buffers, simple attributes)."""
        assert self.conn is not None
        cls = self.held_classes.get(header.get("callback"))  # type: ignore[arg-type]
        try:
            if cls is None:
                raise RuntimeError("an unknown class of the grader")
            args, kwargs = self.decode(header.get("args"), tensors), self.decode(header.get("kwargs"), tensors)
            self._take_generator(header, tensors)
            self.serving += 1
            try:
                obj = cls(*args, **kwargs)
            finally:
                self.serving -= 1
        except wire.WireError:
            raise
        except Exception as error:
            wire.send(self.conn, {"error": wire.error_record(error)}, {})
            return
        number = len(self.held_objects) + 1
        self.held_objects[number] = obj
        self._send_held_state(number, obj)

    def _send_held_state(self, number: int, obj: Any) -> None:
        """What the kernel needs to stand in for an object the grader holds: a module's parameters, buffers and
        submodules with their simple attributes."""
        assert self.conn is not None
        encoder = wire.Encoder(self._encode_other)
        reply: dict[str, Any] = {"object": number, "rng": encoder(torch.get_rng_state())}
        if isinstance(obj, nn.Module):
            params = dict(obj.named_parameters())
            reply["params"] = encoder({p: t.detach() for p, t in params.items()})
            reply["requires_grad"] = {p: bool(t.requires_grad) for p, t in params.items()}
            reply["buffers"] = encoder({p: b.detach() for p, b in obj.named_buffers()})
            reply["attrs"] = {path: {k: _simple(v) for k, v in vars(m).items()
                                     if not k.startswith("_") and _simple(v) is not _NOT_SIMPLE}
                              for path, m in obj.named_modules()}
            # the submodules of torch.nn's own classes (nn.Linear, nn.ModuleList, ...), by class name
            reply["types"] = {path: type(m).__name__ for path, m in obj.named_modules()
                              if type(m).__module__.startswith("torch.nn.modules.") and getattr(nn, type(m).__name__, None) is type(m)}
        wire.send(self.conn, reply, encoder.tensors)

    def _answer_adopt(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """A module of the grader's passed to the student's code: its current state."""
        obj = self.held_objects.get(header.get("callback"))  # type: ignore[arg-type]
        if not isinstance(obj, nn.Module):
            raise wire.WireError("an unknown module of the grader")
        self._take_generator(header, tensors)
        self._send_held_state(int(header["callback"]), obj)

    def _answer_held(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """A method of an object the grader holds, called by the student's code (a module's forward with the
        kernel's current parameters, or a reference cache's update)."""
        obj = self.held_objects.get(header.get("callback"))  # type: ignore[arg-type]
        method = self.decode(header.get("method"), tensors)

        def run(args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, list[nn.Parameter]]:
            if obj is None or not isinstance(method, str) or method.startswith("_") and method not in ("__len__", "__next__"):
                raise RuntimeError("an unknown object or method of the grader")
            if method == "__next__":   # an iterator of the test's: its next item, or none at its end
                try:
                    return [next(obj)], []
                except StopIteration:
                    return [], []
            if isinstance(obj, nn.Module) and method == "forward":
                state = self.decode(header.get("state"), tensors)
                _load_module(obj, state, self.decode(header.get("training"), tensors))
                params = dict(obj.named_parameters())
                path = self.decode(header.get("path", ""), tensors)
                target = obj.get_submodule(path) if isinstance(path, str) and path else obj
                return target(*args, **kwargs), [params[p] for p in state if p in params]
            return (len(obj) if method == "__len__" else getattr(obj, method)(*args, **kwargs)), []
        self._answer_call(header, tensors, run)

    def _answer_callback_backward(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        assert self.conn is not None
        inputs, outputs = self.callback_graphs.get(header.get("token"), ([], []))  # type: ignore[arg-type]
        grads = self.decode(header.get("grads"), tensors)
        if not isinstance(grads, list) or len(grads) != len(outputs):
            raise wire.WireError("a backward call-back outside the protocol")
        pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
        wanted = [t for t in inputs if t.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True) \
            if pairs and wanted else [None] * len(wanted)
        by_input = dict(zip(map(id, wanted), found))
        encoder = wire.Encoder(self._encode_other)
        wire.send(self.conn, {"grads": [None if by_input.get(id(t)) is None else encoder(by_input[id(t)])
                                        for t in inputs]}, encoder.tensors)

    # --- values --------------------------------------------------------------------------------------------
    def decode(self, value: Any, tensors: dict[str, torch.Tensor]) -> Any:
        return wire.decode(value, tensors, self._decode_other)

    def decode_reply(self, value: Any, tensors: dict[str, torch.Tensor]) -> Any:
        """A value the kernel answered: outside the schema, the kernel is gone for this submission."""
        try:
            return self.decode(value, tensors)
        except wire.WireError as error:
            raise self._lost(OUTSIDE, str(error)) from None

    def _decode_other(self, record: dict[str, Any]) -> Any:
        if set(record) in ({"held"}, {"held", "path"}) and type(record["held"]) is int:   # the grader's own, handed back
            if record["held"] not in self.held_objects:
                raise wire.WireError("a reference to an object the grader does not hold")
            obj = self.held_objects[record["held"]]
            path = record.get("path", "")
            if path:
                if not (isinstance(path, str) and isinstance(obj, nn.Module)):
                    raise wire.WireError("a path outside the protocol")
                try:
                    obj = obj.get_submodule(path)
                except AttributeError:
                    raise wire.WireError("a path outside the protocol") from None
            return obj
        if set(record) == {"handle", "kind", "type"} and isinstance(record["handle"], int) \
                and record["kind"] in ("module", "object") and isinstance(record["type"], str):
            key = record["handle"]
            if key not in self.proxies:
                self.proxies[key] = ModuleProxy(self, key) if record["kind"] == "module" else \
                    ObjectProxy(self, key, record["type"][:100])
            return self.proxies[key]
        raise wire.WireError(f"a reference outside the protocol: {str(record)[:80]}")

    def _encode_other(self, value: Any) -> dict[str, Any] | None:
        if isinstance(value, (ModuleProxy, ObjectProxy)):
            return {"handle": object.__getattribute__(value, "_key")}
        if isinstance(value, KeptProxy):
            return {"kept": [value.cell, value.name]}
        if isinstance(value, type):   # a class of the grader's (a reference): the kernel builds it through us
            for number, known in self.held_classes.items():
                if known is value:
                    break
            else:
                number = len(self.held_classes) + 1
                self.held_classes[number] = value
            return {"held_class": number, "name": value.__name__[:100], "module": issubclass(value, nn.Module)}
        if callable(value) and not isinstance(value, nn.Module) and (
                type(value).__name__ in ("function", "builtin_function_or_method", "method", "partial")):
            number = len(self.callbacks) + 1
            self.callbacks[number] = value
            return {"callback": number}
        if isinstance(value, nn.Module):   # a module of the test's, passed to the student's code
            number = next((n for n, known in self.held_objects.items() if known is value), len(self.held_objects) + 1)
            self.held_objects[number] = value
            return {"held_module": number}
        if not isinstance(value, torch.Tensor) and (type(value).__module__ not in ("builtins",)
                                                    or isinstance(value, collections.abc.Iterator)):
            for number, known in self.held_objects.items():   # an object of the grader's (a reference cache)
                if known is value:
                    break
            else:
                number = len(self.held_objects) + 1
                self.held_objects[number] = value
            return {"held": number}
        return None

    def bindings(self, encoder: wire.Encoder) -> list[list[Any]]:
        """How the kernel binds the student's names for one call: as the test's namespace binds them now; and a
        name of the course's given code that the test rebound (to a reference that records, say)."""
        bound = []
        for name in sorted(self.student_names):
            value = self.names.get(name)
            if isinstance(value, KeptProxy) or callable(value):
                bound.append([name, encoder(value)])
        for name, given in sorted(self.course_names.items()):
            value = self.names.get(name)
            if name not in self.student_names and value is not given and (isinstance(value, KeptProxy) or callable(value)):
                bound.append([name, encoder(value)])
        return bound

    # --- calls -----------------------------------------------------------------------------------------------
    def call(self, target: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any], op: str = "call",
             extra: dict[str, Any] | None = None) -> Any:
        modules = _unique([a for a in list(args) + list(kwargs.values()) if isinstance(a, ModuleProxy)] +
                          ([self.proxies[target["handle"]]] if "handle" in target and
                           isinstance(self.proxies.get(target["handle"]), ModuleProxy) else []))
        params = [p for m in modules for p in m._mirror_parameters() if p.requires_grad]
        leaves = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor) and t.requires_grad]
        grad = op == "call" and torch.is_grad_enabled() and bool(params or leaves)
        if not grad:
            return self._call(target, args, kwargs, modules, False, op, extra)[0]
        box: dict[str, Any] = {}
        outputs = RemoteFunction.apply(self, target, args, kwargs, modules, box, *leaves, *params)  # type: ignore[no-untyped-call]  # torch's Function.apply has no annotations
        return wire.rebuild(box["shape"], list(outputs))

    def _call(self, target: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              modules: list[ModuleProxy], grad: bool, op: str = "call",
              extra: dict[str, Any] | None = None) -> tuple[Any, int | None]:
        encoder = wire.Encoder(self._encode_other)
        # with grad, the leaves travel as tensors that require grad (the kernel makes them leaves)
        header = {"op": op, "target": target, "args": encoder(list(_detached(args, grad))),
                  "kwargs": encoder(dict(_detached(kwargs, grad))), "grad": grad,
                  "grad_mode": torch.is_grad_enabled(),
                  "sync": [[m._key, encoder(m._mirror_state())] for m in modules]}
        for key, value in (extra or {}).items():
            header[key] = encoder(_detached(value))
        header["bind"] = self.bindings(encoder)
        header["rng"] = encoder(torch.get_rng_state())   # the global generator travels with the call, and back
        header["dtype"] = str(torch.get_default_dtype()).removeprefix("torch.")   # and the default dtype, there
        self.grown = None
        try:
            reply, tensors = self.request(header, encoder.tensors)
        except RemoteError as error:   # the test's modules and generators, as the student's failed call left them
            if error.reply is not None:
                self._take_back(*error.reply, list(args) + list(kwargs.values()))
            raise
        if op == "lines":
            lines = reply.get("lines")
            if not (isinstance(lines, list) and len(lines) == 2 and all(type(n) is int for n in lines)):
                raise KernelGone(OUTSIDE, "a measurement")
            if 0 in lines:   # a call of Python defined in a notebook runs at least one line of it
                what = "/".join(str(t) for t in target.get("kept", [])) or "a module's forward"
                self.flags.append(f"the kernel counted no line of Python in a call of {what}: the measurement of "
                                  "Python loops could not be made (tracing turned off, or not Python code)")
            return lines, None
        value = self.decode_reply(reply.get("value"), tensors)
        self._follow_generator(reply.get("rng"), tensors)
        inputs = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
        for index, changed in reply.get("mutated", []) if isinstance(reply.get("mutated"), list) else []:
            after = self.decode_reply(changed, tensors)
            if type(index) is int and 0 <= index < len(inputs) and isinstance(after, torch.Tensor):
                with torch.no_grad():   # what the student's code changed in place shows in the test's tensor
                    if inputs[index].shape == after.shape and inputs[index].dtype == after.dtype:
                        inputs[index].copy_(after)
                    else:
                        inputs[index].data = after
        self._take_back(reply, tensors, list(args) + list(kwargs.values()))
        if op == "watch":
            watch = Watch.from_reply(reply.get("watch"), self.grown)
            if self.meter is not None and self.grown is None:
                self.flags.append("the kernel skipped the grader's measurement of its memory (its agent was changed)")
            value = (value, watch)
        for key, state in reply.get("state", []) if isinstance(reply.get("state"), list) else []:
            proxy = self.proxies.get(key)
            if isinstance(proxy, ModuleProxy):
                proxy._refresh_values(self.decode_reply(state, tensors))
        graph = reply.get("graph")
        return value, graph if isinstance(graph, int) else None

    def _take_back(self, reply: dict[str, Any], tensors: dict[str, torch.Tensor], arguments: list[Any]) -> None:
        """The test's own modules and generators that the call was given, as the student's code left them: a
        module's parameters and buffers (same names, shapes and dtypes only), a generator's state."""
        for entry in reply.get("adopted", []) if isinstance(reply.get("adopted"), list) else []:
            if not (isinstance(entry, list) and len(entry) == 3 and type(entry[0]) is int and isinstance(entry[2], dict)):
                raise KernelGone(OUTSIDE, "a module's state")
            number, state, training = entry
            module = self.held_objects.get(number)
            values = self.decode_reply(state, tensors)
            if isinstance(module, nn.Module) and isinstance(values, dict):   # never another shape or dtype
                _load_module(module, values, training, reshape=False)
        for index, state in reply.get("generators", []) if isinstance(reply.get("generators"), list) else []:
            value = self.decode_reply(state, tensors)
            if type(index) is int and 0 <= index < len(arguments) and isinstance(arguments[index], torch.Generator) \
                    and isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
                try:
                    arguments[index].set_state(value)
                except RuntimeError:
                    raise self._lost(OUTSIDE, "a generator's state") from None

    def _follow_generator(self, record: Any, tensors: dict[str, torch.Tensor]) -> None:
        """The kernel's global generator after the call becomes the grader's (a state of the right form only)."""
        state = self.decode_reply(record, tensors)
        expected = torch.get_rng_state()
        if not (isinstance(state, torch.Tensor) and state.dtype == expected.dtype and state.shape == expected.shape):
            raise self._lost(OUTSIDE, "its random generator's state")
        try:
            torch.set_rng_state(state)
        except RuntimeError:
            raise self._lost(OUTSIDE, "its random generator's state") from None

    def release(self) -> None:
        self.proxies.clear()


@dataclass(frozen=True)
class Watch:
    """What a call did. Measured in the kernel (evidence, not a verdict by itself): the torch operations it ran
    (their names), how many, and the peak bytes of the tensors it created that were alive at once. Measured
    by the grader from the kernel's memory cgroup, out of the student's reach: `grown`, how many bytes the
    kernel's memory grew by at its peak during the call (None where the kernel has no memory cgroup)."""
    ops: frozenset[str]
    count: int
    peak: int
    grown: int | None = None

    @classmethod
    def from_reply(cls, record: Any, grown: int | None = None) -> Watch:
        if not (isinstance(record, dict) and isinstance(record.get("ops"), list) and type(record.get("count")) is int
                and type(record.get("peak")) is int and all(isinstance(o, str) for o in record["ops"])):
            raise KernelGone(OUTSIDE, "a measurement")
        return cls(frozenset(o[:200] for o in record["ops"]), record["count"], record["peak"], grown)


class RemoteFunction(torch.autograd.Function):
    """A call to the kernel inside the grader's autograd graph: backward asks the kernel for the gradients
    of the call's tensor inputs and of the parameters of the modules it involved."""

    @staticmethod
    def forward(ctx: Any, remote: Remote, target: dict[str, Any], args: Any, kwargs: Any,
                modules: list[ModuleProxy], box: dict[str, Any], *inputs: torch.Tensor) -> Any:
        value, graph = remote._call(target, args, kwargs, modules, True)
        outputs: list[torch.Tensor] = []
        box["shape"] = wire.flatten(value, outputs)
        ctx.remote, ctx.graph, ctx.modules = remote, graph, modules
        ctx.leaf_count = len(inputs) - sum(len([p for p in m._mirror_parameters() if p.requires_grad]) for m in modules)
        returned = tuple(o.detach() for o in outputs)
        ctx.mark_non_differentiable(*[r for r, o in zip(returned, outputs)
                                      if not (o.is_floating_point() and o.requires_grad)])
        return returned

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:
        remote: Remote = ctx.remote
        encoder = wire.Encoder(remote._encode_other)
        header = {"op": "backward", "graph": ctx.graph,
                  "grads": [None if g is None else encoder(g) for g in grads]}
        reply, tensors = remote.request(header, encoder.tensors)
        leaves = remote.decode_reply(reply.get("leaves"), tensors)
        params = remote.decode_reply(reply.get("params"), tensors)
        result: list[torch.Tensor | None] = list(leaves)[:ctx.leaf_count]
        result += [None] * (ctx.leaf_count - len(result))
        for module, found in zip(ctx.modules, params):
            for path, param in module._mirror_named_parameters():
                if param.requires_grad:
                    result.append(found.get(path) if isinstance(found, dict) else None)
        return (None, None, None, None, None, None) + tuple(result)


class KeptProxy:
    """A name the student bound in a solution cell (a function or a class), kept in the kernel."""

    def __init__(self, remote: Remote, cell: str, name: str):
        self.remote, self.cell, self.name = remote, cell, name
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.remote.call({"kept": [self.cell, self.name]}, args, kwargs)

    def __repr__(self) -> str:
        return f"<the student's {self.name}>"

    def __instancecheck__(self, obj: Any) -> bool:
        """isinstance(x, StudentClass): x is an object of the kernel built from the student's class of that name."""
        if isinstance(obj, ModuleProxy):
            return obj._node().get("type") == self.name and obj._node().get("module") == "__main__"
        return isinstance(obj, ObjectProxy) and object.__getattribute__(obj, "_type") == self.name

    def watch(self, *args: Any, **kwargs: Any) -> tuple[Any, Watch]:
        """(what the call returns, a Watch of the torch operations and memory it used, measured in the kernel)."""
        return self.remote.call({"kept": [self.cell, self.name]}, args, kwargs, op="watch")  # type: ignore[no-any-return]

    @property
    def definitions(self) -> dict[str, str]:
        """Every top-level function and class the student wrote, {name: source}, from their notebook's text."""
        return dict(self.remote.sources)

    @property
    def source(self) -> str:
        """The source of the student's definition of this name, from the notebook they handed in (read by the
        grader, never asked of the kernel); "" when none is found."""
        return self.remote.sources.get(self.name, "")

    def lines(self, small: tuple[Any, ...], large: tuple[Any, ...]) -> tuple[int, int]:
        """How many lines of the student's Python run for `small` and for `large` arguments (measured in
        the kernel, after a first call: evidence, not a verdict the kernel can be trusted with alone)."""
        found = self.remote.call({"kept": [self.cell, self.name]}, small, {}, op="lines", extra={"large": list(large)})
        return int(found[0]), int(found[1])


class ObjectProxy:
    """An object of the student's that stays in the kernel (a cache, say): its methods are called there."""

    def __init__(self, remote: Remote, key: int, type_name: str):
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        remote, key = self._remote, self._key

        def method(*args: Any, **kwargs: Any) -> Any:
            return remote.call({"handle": key, "path": [name]}, args, kwargs)
        return method

    def __len__(self) -> int:
        value = self._remote.call({"handle": self._key, "path": ["__len__"]}, (), {})
        if type(value) is not int:
            raise remote_error("TypeError", "TypeError", "__len__ did not return an int")
        return value


BUILTIN_PREFIXES = ("torch.nn.modules.",)


class ModuleProxy:
    """A module of the student's that stays in the kernel, seen through a local mirror (see the module's
    docstring). `path` is the dotted path of a submodule of the root handle ("" for the root)."""

    def __init__(self, remote: Remote, key: int, path: str = "", root: ModuleProxy | None = None):
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_root", root)
        if root is None:
            object.__setattr__(self, "_views", {})
            object.__setattr__(self, "_params", {})     # path -> local Parameter
            object.__setattr__(self, "_buffers", {})    # path -> local tensor
            object.__setattr__(self, "_tree", {})
            self._describe()

    # --- the mirror (kept by the root) -------------------------------------------------------------------
    def _top(self) -> ModuleProxy:
        root = object.__getattribute__(self, "_root")
        return self if root is None else root

    def _describe(self) -> None:
        top = self._top()
        reply, tensors = top._remote.request({"op": "describe", "handle": top._key}, {})
        tree = reply.get("tree")
        if not isinstance(tree, dict):
            raise KernelGone(OUTSIDE, "a description")
        params = top._remote.decode_reply(reply.get("params"), tensors)
        buffers = top._remote.decode_reply(reply.get("buffers"), tensors)
        wants_grad = reply.get("requires_grad", {})
        shared = reply.get("shared", {})
        old = object.__getattribute__(top, "_params")
        new: dict[str, nn.Parameter] = {}
        for path, value in params.items():
            if path in old and old[path].shape == value.shape and old[path].dtype == value.dtype:
                with torch.no_grad():
                    old[path].copy_(value)
                new[path] = old[path]
            elif path in old:
                old[path].data = value.detach().clone()
                new[path] = old[path]
            else:
                new[path] = nn.Parameter(value.detach().clone(), requires_grad=bool(wants_grad.get(path, True)))
        for path, first in shared.items():
            if first in new:
                new[path] = new[first]
        object.__setattr__(top, "_params", new)
        object.__setattr__(top, "_buffers", {p: t.detach().clone() for p, t in buffers.items()})
        object.__setattr__(top, "_tree", tree)

    def _refresh_values(self, state: dict[str, torch.Tensor]) -> None:
        top = self._top()
        params, buffers = object.__getattribute__(top, "_params"), object.__getattribute__(top, "_buffers")
        if set(state) - set(params) - set(buffers) or any(
                p in state and (params[p].shape != state[p].shape or params[p].dtype != state[p].dtype) for p in params):
            self._describe()   # the structure changed (a new parameter, a new dtype): read it again
            return
        with torch.no_grad():
            for path, value in state.items():
                if path in params:
                    params[path].copy_(value)
                else:
                    buffers[path] = value.detach().clone()

    def _mirror_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        top = self._top()
        seen, found = set(), []
        for path, param in object.__getattribute__(top, "_params").items():
            if id(param) not in seen:
                seen.add(id(param))
                found.append((path, param))
        return found

    def _mirror_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self._mirror_named_parameters()]

    def _mirror_state(self) -> dict[str, torch.Tensor]:
        top = self._top()
        state = {p: t.detach() for p, t in self._mirror_named_parameters()}
        state.update(object.__getattribute__(top, "_buffers"))
        return state

    def _node(self) -> dict[str, Any]:
        node = object.__getattribute__(self._top(), "_tree").get(object.__getattribute__(self, "_path"))
        if not isinstance(node, dict):
            raise AttributeError("this submodule no longer exists in the student's module")
        return node

    def _child_path(self, name: str) -> str:
        path = object.__getattribute__(self, "_path")
        return f"{path}.{name}" if path else name

    # --- what a test sees ----------------------------------------------------------------------------------
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        node = self._node()
        if node.get("module") == "autograder.held":   # a reference the grader built: its own class, by its number
            held: type | None = object.__getattribute__(self._top(), "_remote").held_classes.get(node.get("held"))
            if held is not None:
                return held
        if str(node.get("module", "")).startswith(BUILTIN_PREFIXES):
            local = getattr(nn, str(node.get("type")), None)
            if isinstance(local, type) and issubclass(local, nn.Module):
                return local
        return ModuleProxy

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        node = self._node()
        top = self._top()
        if name in node.get("params", []):
            if name in node.get("none_params", []):
                return None
            return object.__getattribute__(top, "_params").get(self._child_path(name))
        if name in node.get("buffers", []):
            return object.__getattribute__(top, "_buffers").get(self._child_path(name))
        if name in node.get("children", []):
            return top._view(self._child_path(name))
        attrs = node.get("attrs", {})
        if name in attrs:
            value = attrs[name]
            return tuple(value["tuple"]) if isinstance(value, dict) and "tuple" in value else value
        if name in LOCAL_METHODS:
            return getattr(_LocalMethods(self), name)
        if name not in node.get("methods", []):
            raise AttributeError(f"the student's {node.get('type')} has no attribute {name!r}")
        remote, key, path = top._remote, top._key, object.__getattribute__(self, "_path")

        def method(*args: Any, **kwargs: Any) -> Any:
            result = remote.call({"handle": key, "path": [p for p in path.split(".") if p] + [name]}, args, kwargs)
            top._describe()
            return result
        return method

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the grader's tests cannot set {name!r} on a module that lives in the kernel")

    def _view(self, path: str) -> ModuleProxy:
        node = object.__getattribute__(self, "_tree").get(path, {})
        path = node.get("same_as", path) if isinstance(node.get("same_as", path), str) else path
        if path == "":
            return self   # a submodule that is the module itself
        views: dict[str, ModuleProxy] = object.__getattribute__(self, "_views")
        if path not in views:
            views[path] = ModuleProxy(self._remote, self._key, path, root=self)
        return views[path]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        top = self._top()
        path = object.__getattribute__(self, "_path")
        return top._remote.call({"handle": top._key, "path": [p for p in path.split(".") if p] + ["__call__"]},
                                args, kwargs)

    def __repr__(self) -> str:
        return f"<the student's {self._node().get('type')} (in the kernel)>"

    def __iter__(self) -> Iterator[ModuleProxy]:   # a ModuleList or Sequential
        node = self._node()
        return iter([self._top()._view(self._child_path(c)) for c in node.get("children", [])])

    def __len__(self) -> int:
        return len(self._node().get("children", []))

    def __getitem__(self, index: int) -> ModuleProxy:
        return list(self)[index]


class _LocalMethods:
    """nn.Module's methods that a test calls, answered from the mirror, or sent to the kernel and followed by
    a fresh description (to, double, float, half, train, eval, requires_grad_)."""

    def __init__(self, proxy: ModuleProxy):
        self.proxy = proxy
        self.prefix = object.__getattribute__(proxy, "_path")

    def _own(self, path: str) -> str | None:
        if not self.prefix:
            return path
        return path[len(self.prefix) + 1:] if path.startswith(self.prefix + ".") else None

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        top = self.proxy._top()
        items = object.__getattribute__(top, "_params").items() if not remove_duplicate else top._mirror_named_parameters()
        for path, param in items:
            own = self._own(path)
            if own is not None:
                yield (f"{prefix}.{own}" if prefix else own), param

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
        for path, buffer in object.__getattribute__(self.proxy._top(), "_buffers").items():
            own = self._own(path)
            if own is not None:
                yield (f"{prefix}.{own}" if prefix else own), buffer

    def buffers(self, recurse: bool = True) -> Iterator[torch.Tensor]:
        return (b for _, b in self.named_buffers())

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {n: p.detach() for n, p in self.named_parameters(remove_duplicate=False)}
        state.update({n: b for n, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        params = dict(self.named_parameters(remove_duplicate=False))
        buffers = object.__getattribute__(self.proxy._top(), "_buffers")
        missing = set(params) - set(state)
        if strict and missing:
            raise RuntimeError(f"missing keys {sorted(missing)}")
        with torch.no_grad():
            for name, value in state.items():
                if name in params:
                    params[name].copy_(value)
                elif (self.prefix + "." + name if self.prefix else name) in buffers:
                    buffers[self.prefix + "." + name if self.prefix else name] = value.detach().clone()
                elif strict:
                    raise RuntimeError(f"unexpected key {name!r}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            param.grad = None

    def named_modules(self) -> Iterator[tuple[str, ModuleProxy]]:
        top = self.proxy._top()
        for path in object.__getattribute__(top, "_tree"):
            own = self._own(path) if path else ("" if not self.prefix else None)
            if own is not None:
                yield own, (top if not path else top._view(path))

    def modules(self) -> Iterator[ModuleProxy]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, ModuleProxy]]:
        node = self.proxy._node()
        for name in node.get("children", []):
            yield name, self.proxy._top()._view(self.proxy._child_path(name))

    def children(self) -> Iterator[ModuleProxy]:
        return (m for _, m in self.named_children())

    def _remote_then_describe(self, name: str, *args: Any) -> ModuleProxy:
        top = self.proxy._top()
        path = [p for p in self.prefix.split(".") if p] + [name]
        top._remote.call({"handle": top._key, "path": path}, args, {})
        top._describe()
        return self.proxy

    def to(self, *args: Any, **kwargs: Any) -> ModuleProxy:
        return self._remote_then_describe("to", *args)

    def double(self) -> ModuleProxy:
        return self._remote_then_describe("double")

    def float(self) -> ModuleProxy:
        return self._remote_then_describe("float")

    def half(self) -> ModuleProxy:
        return self._remote_then_describe("half")

    def bfloat16(self) -> ModuleProxy:
        return self._remote_then_describe("bfloat16")

    def train(self, mode: bool = True) -> ModuleProxy:
        return self._remote_then_describe("train", mode)

    def eval(self) -> ModuleProxy:
        return self._remote_then_describe("eval")

    def lines(self, small: tuple[Any, ...], large: tuple[Any, ...]) -> tuple[int, int]:
        """How many lines of the student's Python a forward call runs for `small` and for `large` arguments."""
        top = self.proxy._top()
        path = [p for p in self.prefix.split(".") if p] + ["__call__"]
        found = top._remote.call({"handle": top._key, "path": path}, tuple(small), {}, op="lines",
                                 extra={"large": list(large)})
        return int(found[0]), int(found[1])

    def requires_grad_(self, requires_grad: bool = True) -> ModuleProxy:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self._remote_then_describe("requires_grad_", requires_grad)


LOCAL_METHODS = {name for name in vars(_LocalMethods) if not name.startswith("_")}


_NOT_SIMPLE = object()


def _simple(value: Any) -> Any:
    """A plain attribute of a module as the kernel can receive it (a number, a string, a tuple of them)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return {"tuple": list(value)}
    return _NOT_SIMPLE


def _load_module(module: nn.Module, state: dict[str, torch.Tensor], training: dict[str, bool],
                 reshape: bool = True) -> None:
    """The kernel's values of a held module's parameters and buffers, and its modules' training flags; a value of
    another shape or dtype replaces the parameter's data, unless `reshape` is False (then it is left out)."""
    targets = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    with torch.no_grad():
        for path, value in state.items():
            target = targets.get(path)
            if target is None or not isinstance(value, torch.Tensor):
                continue
            if target.shape == value.shape and target.dtype == value.dtype:
                if not torch.equal(target, value):   # unchanged: left alone, so a graph that saved it stays valid
                    target.copy_(value)
            elif reshape:
                target.data = value.detach().clone()
    for path, sub in module.named_modules():
        if isinstance(training.get(path), bool):
            sub.training = training[path]


def _unique(items: list[Any]) -> list[Any]:
    seen, found = set(), []
    for item in items:
        top = item._top() if isinstance(item, ModuleProxy) else item
        if id(top) not in seen:
            seen.add(id(top))
            found.append(top)
    return found


def _detached(value: Any, keep_grad: bool = False) -> Any:
    """`value` with its tensors detached; with `keep_grad`, each keeps whether it requires grad."""
    if isinstance(value, torch.Tensor):
        return value.detach().requires_grad_(value.requires_grad) if keep_grad and value.is_floating_point() \
            else value.detach()
    if isinstance(value, tuple):
        return tuple(_detached(v, keep_grad) for v in value)
    if isinstance(value, list):
        return [_detached(v, keep_grad) for v in value]
    if isinstance(value, dict) and type(value) is dict:
        return {k: _detached(v, keep_grad) for k, v in value.items()}
    return value
