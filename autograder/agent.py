"""The agent: the code that runs in a student's kernel after the notebook, answering the grader's calls.

It is sent as the last cell (`cell_source`), never imported by the kernel from the grader: the kernel
receives this file's source and autograder/wire.py's. It listens on a unix socket in the kernel's own
sockets folder (the grader connects through /proc/PID/root) and answers narrow requests, one at a time:
call a name the student bound in a solution cell (kept right after that cell), or a method of an object
that stays in the kernel (a handle); describe a module (its submodules, their types, simple attributes
and parameters); run backward through a graph it kept; count the Python lines a call runs (a
measurement, for the no-loop rule). While a call runs, the names of the notebook are bound as the grader
says (the student's own objects, or call-back stubs that ask the grader to compute a reference), and
restored after. It never sees a test, an expected value or reference code: only inputs.

Nothing here is trusted by the grader: a student's code can change anything in this process, so what
comes back is only ever the student's answer, checked by the grader against its own references.
"""
import socket

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

AGENT = r'''
def _autograder_agent(wire_source, socket_path, kept_key, main=None, conn=None):
    import builtins, os, socket, sys, types
    import torch
    wire = types.ModuleType("_autograder_wire")
    exec(compile(wire_source, "<autograder wire>", "exec"), wire.__dict__)
    main = sys.modules["__main__"].__dict__ if main is None else main
    kept = main.get(kept_key, {})
    handles, graphs, next_id = {}, {}, [1]
    DEFAULT_DTYPES = {"float32": torch.float32, "float64": torch.float64}   # what torch.set_default_dtype takes

    def register(obj):
        for key, value in handles.items():
            if value is obj:
                return key
        key = next_id[0]
        next_id[0] += 1
        handles[key] = obj
        return key

    def encode_other(obj):
        if isinstance(obj, HeldObject):   # the grader's own object, handed back: it gets it back
            return {"held": object.__getattribute__(obj, "_held")}
        if isinstance(obj, HeldModule) and getattr(obj, "_held", None) is not None:
            return {"held": obj._held, "path": obj._held_path}
        kind = "module" if isinstance(obj, torch.nn.Module) else "object"
        return {"handle": register(obj), "kind": kind, "type": type(obj).__name__[:100]}

    if conn is None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(socket_path)
        server.listen(1)
        conn, _ = server.accept()
        server.close()

    class Undefined:
        """A name that its solution cell never defined: whatever uses it says so."""
        def __init__(self, name):
            self._undefined_name = name

        def __call__(self, *args, **kwargs):
            raise NameError(f"name {self._undefined_name!r} is not defined: its cell stopped before defining it (an "
                            f"error, or the cell's time limit)")

    class Stub:
        """A name bound to a reference the grader computes: each call asks the grader."""
        def __init__(self, number):
            self.number, self.expired = number, False

        def __call__(self, *args, **kwargs):
            if self.expired:
                raise RuntimeError("this call-back of the grader has expired")
            grad = torch.is_grad_enabled() and any(
                isinstance(t, torch.Tensor) and t.requires_grad for t in list(args) + list(kwargs.values()))
            if not grad:
                return ask(self.number, args, kwargs, False)[0]
            flat = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
            box = {}
            outputs = StubFunction.apply(self, args, kwargs, box, *flat)
            return rebuild(box["shape"], list(outputs))

    flatten, rebuild = wire.flatten, wire.rebuild

    def send_grads(token, grads):
        """Ask the grader for the gradients of a call-back's inputs, given its outputs' (their order)."""
        wire.send(conn, {"kind": "callback_backward", "token": token,
                         "grads": [None if g is None else {"tensor": f"g{i}", "grad": False}
                                   for i, g in enumerate(grads)]},
                  {f"g{i}": g for i, g in enumerate(grads) if g is not None})
        header, tensors = wire.receive(conn)
        return list(wire.decode(header.get("grads"), tensors, decode_other))

    class StubFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, stub, args, kwargs, box, *flat):
            value, token = ask(stub.number, args, kwargs, True)
            tensors = []
            box["shape"] = flatten(value, tensors)
            ctx.token, ctx.count = token, len(flat)
            return tuple(t.detach() for t in tensors)

        @staticmethod
        def backward(ctx, *grads):
            return (None, None, None, None) + tuple(send_grads(ctx.token, grads))

    def ask(number, args, kwargs, grad, kind="callback", **extra):
        """Ask the grader to run one of its own objects (a reference); torch's global generator goes along."""
        encoder = wire.Encoder(encode_other)
        header = {"kind": kind, "callback": number, "args": encoder(list(args)), "kwargs": encoder(dict(kwargs)),
                  "grad": grad, "rng": encoder(torch.get_rng_state())}
        header.update({key: encoder(value) for key, value in extra.items()})
        wire.send(conn, header, encoder.tensors)
        reply, tensors = wire.receive(conn)
        if "error" in reply:
            raise RuntimeError(f"the grader's reference raised {reply['error']}")
        if "rng" in reply:
            torch.set_rng_state(wire.decode(reply["rng"], tensors, decode_other))
        if kind in ("construct", "adopt"):
            return reply, tensors
        return wire.decode(reply["value"], tensors, decode_other), reply.get("token")

    class HeldModule(torch.nn.Module):
        """A module the grader holds (a reference built where the student's code builds one, or one a test
        passes in): its parameters live here, under the reference's names, in modules of this class (one per
        submodule of the reference), and a forward asks the grader to run that submodule with their values."""

        def _held_init(self, number, args, kwargs):
            reply, tensors = ask(number, args, kwargs, False, kind="construct")
            self._adopt(reply, tensors)

        def _adopt(self, reply, tensors):
            self._held, self._held_path = reply["object"], ""
            object.__setattr__(self, "_held_root", self)   # not a submodule of itself
            values = wire.decode(reply["params"], tensors, decode_other)
            buffers = wire.decode(reply["buffers"], tensors, decode_other)
            grads = reply.get("requires_grad", {})
            for path in sorted(reply.get("attrs", {}), key=lambda p: p.count(".")):
                if path:
                    *parents, leaf = path.split(".")
                    owner = self.get_submodule(".".join(parents))
                    child = HeldModule()
                    child._held, child._held_path = self._held, path
                    object.__setattr__(child, "_held_root", self)
                    owner.add_module(leaf, child)
                for name, value in reply["attrs"][path].items():
                    owner = self.get_submodule(path)
                    if isinstance(value, dict) and "tuple" in value:
                        value = tuple(value["tuple"])
                    if name == "training":   # the mode the grader's module is in (a test may have called eval())
                        owner.training = bool(value)
                    elif not hasattr(owner, name):
                        object.__setattr__(owner, name, value)
            for path, name in reply.get("types", {}).items():   # a torch.nn module of the grader's is one here too
                if isinstance(path, str) and isinstance(name, str):
                    self.get_submodule(path).__class__ = held_torch_class(name)
            for path, value in values.items():
                *parents, leaf = path.split(".")
                self.get_submodule(".".join(parents)).register_parameter(
                    leaf, torch.nn.Parameter(value.detach().clone(), requires_grad=bool(grads.get(path, True))))
            for path, value in buffers.items():
                *parents, leaf = path.split(".")
                self.get_submodule(".".join(parents)).register_buffer(leaf, value.detach().clone())

        def forward(self, *args, **kwargs):
            root = self._held_root
            params = dict(root.named_parameters())
            state = {**{p: t.detach() for p, t in params.items()},
                     **{p: t.detach() for p, t in root.named_buffers()}}
            training = {p: m.training for p, m in root.named_modules()}
            wanted = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor) and t.requires_grad]
            grad = torch.is_grad_enabled() and (bool(wanted) or any(t.requires_grad for t in params.values()))
            extra = dict(method="forward", state=state, training=training, path=self._held_path)
            if not grad:
                return ask(self._held, args, kwargs, False, kind="held", **extra)[0]
            box = {}
            inputs = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
            outputs = HeldFunction.apply(self, args, kwargs, box, extra, len(inputs), *inputs, *params.values())
            return rebuild(box["shape"], list(outputs))

    torch_classes = {}

    def held_torch_class(name):
        """A stand-in that is also an instance of torch.nn's class `name` (nn.Linear, nn.ModuleList, ...): a student's
        isinstance(m, nn.Linear) initialisation, or len() and iteration of a ModuleList, see what they would see."""
        if name not in torch_classes:
            base = getattr(torch.nn, name, None)
            if not (isinstance(base, type) and issubclass(base, torch.nn.Module)):
                raise wire.WireError(f"no module class torch.nn.{name[:40]}")
            torch_classes[name] = type(name, (HeldModule, base), {"__module__": "autograder.held"})
        return torch_classes[name]

    adopted = {}

    def adopt(number):
        """A module of the grader's that a test passes in: stood in for here, its values read afresh (and sent
        back after the call: what the student's code did to them, training say, shows in the test's module)."""
        reply, tensors = ask(number, (), {}, False, kind="adopt")
        module = HeldModule()
        module._adopt(reply, tensors)
        adopted[number] = module
        return module

    class HeldFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, module, args, kwargs, box, extra, count, *flat):
            value, token = ask(module._held, args, kwargs, True, kind="held", **extra)
            tensors = []
            box["shape"] = flatten(value, tensors)
            ctx.token, ctx.count, ctx.total = token, count, len(flat)
            return tuple(t.detach() for t in tensors)

        @staticmethod
        def backward(ctx, *grads):
            decoded = send_grads(ctx.token, grads)
            decoded += [None] * (ctx.total - len(decoded))
            return (None,) * 6 + tuple(decoded[:ctx.total])

    class HeldObject:
        """An object the grader holds (a reference cache, say): each method call asks the grader."""

        def __init__(self, number):
            object.__setattr__(self, "_held", number)

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda *args, **kwargs: ask(self._held, args, kwargs, False, kind="held", method=name)[0]

        def __len__(self):
            return int(ask(self._held, (), {}, False, kind="held", method="__len__")[0])

        def __iter__(self):   # an iterator of the grader's (a stream of batches): each item asked for in turn
            return self

        def __next__(self):
            items = ask(self._held, (), {}, False, kind="held", method="__next__")[0]
            if not items:
                raise StopIteration
            return items[0]

    held_classes = {}

    def held_class(number, name, is_module):
        """A class of the grader's, as the student's code sees it: building one asks the grader to build it."""
        if number in held_classes:
            return held_classes[number]
        if is_module:
            def __init__(self, *args, **kwargs):
                HeldModule.__init__(self)
                self._held_init(number, args, kwargs)
            cls = type(name, (HeldModule,), {"__init__": __init__, "__module__": "autograder.held",
                                              "_autograder_held": number})
        else:
            def __new__(cls, *args, **kwargs):
                reply, _ = ask(number, args, kwargs, False, kind="construct")
                return HeldObject(reply["object"])
            cls = type(name, (), {"__new__": __new__, "__module__": "autograder.held"})
        held_classes[number] = cls
        return cls

    stubs = []

    def decode_other(record):
        if set(record) == {"handle"}:
            return handles[record["handle"]]
        if set(record) == {"kept"}:
            cell, name = record["kept"]
            if name not in kept.get(cell, {}):   # the solution cell raised, or ran past its time limit, first
                return Undefined(name)
            return kept[cell][name]
        if set(record) == {"callback"}:
            stub = Stub(record["callback"])
            stubs.append(stub)
            return stub
        if set(record) == {"held_class", "name", "module"}:
            return held_class(record["held_class"], str(record["name"]), bool(record["module"]))
        if set(record) == {"held"}:
            return HeldObject(record["held"])
        if set(record) == {"held_module"}:
            return adopt(record["held_module"])
        raise wire.WireError(f"unknown reference {sorted(record)}")

    def target_of(record):
        obj = decode_other({k: v for k, v in record.items() if k in ("handle", "kept")})
        for name in record.get("path", []):
            obj = getattr(obj, name)
        return obj

    def modules_of(values):
        return [v for v in values if isinstance(v, torch.nn.Module)]

    def state(module):
        """Parameters and buffers of a module, by dotted path (each shared Parameter once, by its first path)."""
        seen, params, buffers, shared = {}, {}, {}, {}
        for path, param in module.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                shared[path] = seen[id(param)]
            else:
                seen[id(param)] = path
                params[path] = param
        for path, buffer in module.named_buffers():
            buffers[path] = buffer
        return params, buffers, shared

    def describe(module):
        tree, first = {}, {}
        for path, sub in module.named_modules(remove_duplicate=False):
            attrs = {}
            for name, value in vars(sub).items():
                if name.startswith("_"):
                    continue
                if value is None or isinstance(value, (bool, int, float, str)):
                    attrs[name] = value
                elif isinstance(value, tuple) and all(isinstance(v, (int, float, bool)) for v in value):
                    attrs[name] = {"tuple": list(value)}
            kind = type(sub)
            first.setdefault(id(sub), path)
            methods = sorted({n for k in kind.__mro__ if k.__module__ not in ("torch.nn.modules.module", "builtins")
                              for n, v in vars(k).items() if callable(v) and not n.startswith("_")})[:200]
            tree[path] = {"type": kind.__name__[:100], "module": kind.__module__[:100], "same_as": first[id(sub)],
                          "held": getattr(kind, "_autograder_held", None) if kind.__module__ == "autograder.held" else None,
                          "methods": methods,
                          "mro": [k.__name__[:100] for k in kind.__mro__][:20], "attrs": attrs,
                          "params": list(sub._parameters), "none_params": [n for n, p in sub._parameters.items() if p is None],
                          "buffers": list(sub._buffers), "children": list(sub._modules)}
        params, buffers, shared = state(module)
        encoder = wire.Encoder(encode_other)
        return {"tree": tree, "params": encoder({p: t.detach() for p, t in params.items()}),
                "requires_grad": {p: bool(t.requires_grad) for p, t in params.items()},
                "buffers": encoder({p: t.detach() for p, t in buffers.items() if t is not None}),
                "shared": shared}, encoder.tensors

    def load(module, values):
        params, buffers, _ = state(module)
        with torch.no_grad():
            for path, tensor in values.items():
                target = params.get(path)
                if target is None:
                    target = buffers.get(path)
                if target is None:
                    continue
                if target.shape == tensor.shape and target.dtype == tensor.dtype:
                    if not torch.equal(target, tensor):   # unchanged: left alone, so a kept graph stays valid
                        target.copy_(tensor)
                else:
                    target.data = tensor.detach().clone()

    def python_lines(function, args, kwargs):
        """The lines of the student's Python that function(*args, **kwargs) runs. Only the student's: the
        Python installation's files are left out, and so is code that a library generates at run time (a
        dataclass's __init__, compiled from a string in the library module's globals, say). IPython runs such
        code when the student's code prints, as often as the timing of the kernel's output threads has it
        (its history makes a new record of outputs when the last one came from another stream, or from the
        output of the raw file descriptors, echoed by a thread): counted, it made a correct function's count
        depend on the machine's load. The garbage collector waits meanwhile, so that no finalizer runs at
        a moment that depends on what other threads allocated."""
        import gc
        library = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
        ours, synthetic, count = {}, {}, [0]

        def in_library(name):
            return name.startswith("<frozen") or name.startswith("<autograder") \
                or os.path.realpath(name).startswith(library)

        def on_line(frame, event, arg):
            count[0] += event == "line"
            return on_line

        def on_call(frame, event, arg):
            name = frame.f_code.co_filename
            key = name
            if name not in synthetic:   # no file: code compiled from a string
                synthetic[name] = name.startswith("<") or not os.path.isfile(name)
            if synthetic[name]:
                module = frame.f_globals.get("__name__")
                key = (name, module if isinstance(module, str) else None)
            if key not in ours:
                generated = False
                if isinstance(key, tuple) and key[1] not in (None, "__main__"):
                    owner = sys.modules.get(key[1])
                    path = getattr(owner, "__file__", None) if owner is not None else None
                    generated = isinstance(path, str) and in_library(path) or key[1].startswith("namedtuple_")
                ours[key] = not (generated or in_library(name))
            return on_line if ours[key] else None
        previous, collecting = sys.gettrace(), gc.isenabled()
        gc.disable()
        sys.settrace(on_call)
        try:
            function(*args, **kwargs)
        finally:
            sys.settrace(previous)
            if collecting:
                gc.enable()
        return count[0]

    def watched(function, args, kwargs):
        """function(*args, **kwargs) under a dispatch mode: the torch operations it ran, how many, and the
        peak bytes of the storages it created that were alive at once (storages from before count 0)."""
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        class Watch(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls):
                return False

            def __init__(self):
                super().__init__()
                self.ops, self.alive, self.peak, self.count = set(), {}, 0, 0

            def see(self, leaves, counted):
                for t in leaves:
                    if isinstance(t, torch.Tensor):
                        ref = StorageWeakRef(t.untyped_storage())
                        if ref.cdata not in self.alive:
                            self.alive[ref.cdata] = (ref, t.untyped_storage().nbytes() if counted else 0)

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                self.see(tree_leaves((args, kwargs)), False)
                result = func(*args, **(kwargs or {}))
                self.ops.add(str(func))
                self.count += 1
                self.alive = {c: e for c, e in self.alive.items() if not e[0].expired()}
                self.see(tree_leaves(result), True)
                self.peak = max(self.peak, sum(n for _, n in self.alive.values()))
                return result
        with Watch() as watch:
            value = function(*args, **kwargs)
        return value, {"ops": sorted(watch.ops)[:1000], "count": watch.count, "peak": watch.peak}

    current = {"arguments": []}   # the arguments of the call being answered

    def given_back(encoder):
        """What goes back to the test after a call, even one that raised: the test's modules the student's code was
        given, as it left them (trained, say), and the test's generators, advanced by what it drew."""
        return {"adopted": [[number, encoder({p: t.detach() for p, t in {**dict(module.named_parameters()),
                                                                          **dict(module.named_buffers())}.items()}),
                             {path: bool(sub.training) for path, sub in module.named_modules()}]
                            for number, module in adopted.items()],
                "generators": [[i, encoder(g.get_state())] for i, g in enumerate(current["arguments"])
                               if isinstance(g, torch.Generator)]}

    def handle(header, tensors):
        op = header.get("op")
        if op == "describe":
            description, out = describe(handles[header["handle"]])
            return description, out
        if op == "release":
            for key in header.get("handles", []):
                handles.pop(key, None)
            for key in header.get("graphs", []):
                graphs.pop(key, None)
            return {}, {}
        if op == "backward":
            graph = graphs.pop(header["graph"])
            grads = wire.decode(header["grads"], tensors, decode_other)
            pairs = [(o, g) for o, g in zip(graph["outputs"], grads) if g is not None and o.requires_grad]
            for leaf in graph["leaves"]:
                leaf.grad = None
            for module in graph["modules"]:
                for param in module.parameters():
                    param.grad = None
            if pairs:
                torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
            encoder = wire.Encoder(encode_other)
            leaves = [None if leaf.grad is None else encoder(leaf.grad) for leaf in graph["leaves"]]
            params = []
            for module in graph["modules"]:
                found = state(module)[0]
                params.append(encoder({p: t.grad for p, t in found.items() if t.grad is not None}))
                for t in found.values():
                    t.grad = None
            return {"leaves": leaves, "params": params}, encoder.tensors
        current["arguments"] = []
        if op in ("call", "lines", "watch"):
            adopted.clear()
            args = wire.decode(header.get("args", []), tensors, decode_other)
            kwargs = wire.decode(header.get("kwargs", {"dict": []}), tensors, decode_other)
            current["arguments"] = list(args) + list(kwargs.values())
            function = target_of(header["target"])
            for key, values in header.get("sync", []):
                load(handles[key], wire.decode(values, tensors, decode_other))
            bindings = {name: wire.decode(value, tensors, decode_other) for name, value in header.get("bind", [])}
            inputs = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
            versions = [t._version for t in inputs]
            if "rng" in header:   # the grader's global generator: the student's code draws as if it ran there
                torch.set_rng_state(wire.decode(header["rng"], tensors, decode_other))
            before = {name: main.get(name) for name in bindings}
            main.update(bindings)
            grad = bool(header.get("grad"))
            # the grader's default dtype and grad mode for this call, whatever an earlier call left behind
            # (and put back after it: in-process, the agent shares torch's global state with the grader)
            ambient = torch.get_default_dtype(), torch.is_grad_enabled()
            torch.set_default_dtype(DEFAULT_DTYPES.get(header.get("dtype"), ambient[0]))
            if op == "call":   # the test's grad mode (a training loop may call backward); a graph kept only for grad
                torch.set_grad_enabled(grad or header.get("grad_mode") is True)
            try:
                if op == "lines":
                    large = wire.decode(header["large"], tensors, decode_other)
                    function(*args, **kwargs)
                    return {"lines": [python_lines(function, args, kwargs),
                                      python_lines(function, large, kwargs)]}, {}
                if op == "watch":   # the grader reads the kernel's memory from its cgroup around the call
                    wire.send(conn, {"kind": "measure"}, {})
                    wire.receive(conn)
                    value, watch = watched(function, args, kwargs)
                    wire.send(conn, {"kind": "measured"}, {})
                    wire.receive(conn)
                else:
                    value = function(*args, **kwargs)
            finally:
                torch.set_default_dtype(ambient[0])
                torch.set_grad_enabled(ambient[1])
                main.update(before)
                for stub in stubs:
                    stub.expired = True
                stubs.clear()
            encoder = wire.Encoder(encode_other)
            if not grad:   # no graph goes back: what the call computed travels as plain values
                flat = []
                shape = flatten(value, flat)
                value = rebuild(shape, [t.detach() if t.grad_fn is not None else t for t in flat])
            reply = {"value": encoder(value), "rng": encoder(torch.get_rng_state())}
            if op == "watch":
                reply["watch"] = watch
            reply.update(given_back(encoder))
            # what the call changed in place in its inputs goes back, as it would show in the caller's tensors
            reply["mutated"] = [[i, encoder(t.detach())] for i, (t, v) in enumerate(zip(inputs, versions))
                                if t._version != v]
            involved = modules_of([handles[key] for key, _ in header.get("sync", [])])
            reply["state"] = [[key, encoder({p: t.detach() for p, t in {**state(handles[key])[0],
                                                                        **state(handles[key])[1]}.items()
                                             if t is not None})] for key, _ in header.get("sync", [])]
            if grad:
                outputs = []
                flatten(value, outputs)
                leaves = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor) and t.requires_grad]
                key = next_id[0]
                next_id[0] += 1
                graphs[key] = {"outputs": outputs, "leaves": leaves, "modules": involved}
                reply["graph"] = key
            return reply, encoder.tensors
        raise wire.WireError(f"unknown request {op!r}")

    while True:
        try:
            header, tensors = wire.receive(conn)
        except wire.WireError:
            break
        if header.get("op") == "done":
            break
        try:
            reply, out = handle(header, tensors)
        except BaseException as error:   # the student's code raised (or was interrupted): an answer too
            reply, out = {"error": wire.error_record(error)}, {}
            if header.get("op") == "call":
                try:
                    encoder = wire.Encoder(encode_other)
                    reply.update(given_back(encoder))
                    out = encoder.tensors
                except BaseException:
                    out = {}
        try:
            wire.send(conn, reply, out)
        except wire.WireError as error:
            wire.send(conn, {"error": wire.error_record(error)}, {})
    conn.close()
'''


def cell_source(wire_source: str, socket_path: str, kept_key: str) -> str:
    """The agent cell: defines the agent in a function of its own, runs it, and leaves no name behind."""
    # compiled under a name of its own, so that the line counts of a measurement leave the agent's lines out
    return (f"exec(compile({AGENT!r}, '<autograder agent>', 'exec'))\n"
            f"_autograder_agent({wire_source!r}, {socket_path!r}, {kept_key!r})\n"
            "del _autograder_agent\n")


def keep_cell(names: list[str], cell: str, kept_key: str) -> str:
    """A cell run right after the solution cell `cell`: keeps what the student bound to its names (a name the cell
    did not define is not kept: calling it says so)."""
    return f"globals().setdefault({kept_key!r}, {{}})[{cell!r}] = {{n: globals()[n] for n in {names!r} if n in globals()}}"


def in_process(main: "dict[str, Any]", kept_key: str, conn: "socket.socket") -> None:
    """Run the agent in this process on a connected socket, answering for the namespace `main` (where a
    notebook's code ran): the fast path of the project's own tests, the same code as in a kernel."""
    from pathlib import Path
    from autograder import wire
    namespace: "dict[str, Any]" = {}
    exec(compile(AGENT, "<autograder agent>", "exec"), namespace)
    namespace["_autograder_agent"](Path(wire.__file__).read_text(), "", kept_key, main=main, conn=conn)
