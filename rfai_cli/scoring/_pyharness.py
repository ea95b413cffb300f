"""The two processes of a Python program's run, started by the zygote's contained child.

`tests` mode splits the box in two:
- the *judge* (the contained child itself, PID 1 of the box's PID namespace) reads the cases
  (`cases.json`, written by `programs.py`), deletes the file, and runs each case's own code,
  whole, with stand-ins for the names the candidate defines. Only the judge holds the results
  channel (fd 3), and it is not dumpable, so the program can neither read its memory nor
  reopen its descriptors; as PID 1 it ignores the program's signals.
- the *program* (forked before the cases were read, so they were never in its memory) loads
  `candidate.py` and answers the judge's requests on a pipe: call this, get that attribute,
  iterate this. Its answers are values, never verdicts.

Everything the program sends is decoded into plain data of exact built-in types (numbers,
strings, bytes, None, lists, tuples, dicts, sets): no code of the program's runs on the judge's
side, so a comparison in a case (`==`, `all(...)`, `abs(x - y) < tol`, a HumanEval `check`) is
made by Python's own operators on plain data. A raised exception comes back as the nearest
built-in class in its real MRO (`type(e)`, never `e.__class__`), and the judge raises that.
A value that is not plain data stays in the program as a handle; the judge may call its
methods, read its attributes and iterate it, but a case that needs the program's object to
decide something (`==`, `<`, truth, hashing, arithmetic) or that passes it one of the test's
own functions is *undecidable*: it is re-run in the program's process, whose word counts for
less (`{"inside": true}` on the case's event; see docs/sandbox.md).

`load` mode just loads the candidate (a task without tests). Events are JSON lines on fd 3:
`{"load": "ok"|"fail", ...}` and, per case, `{"case": i, "done": true}` or `{"case": i,
"error": "..."}`, with `"inside": true` for an undecidable case.
"""

import builtins
import ctypes
import json
import os
import signal
import sys

MAX_LINE = 16 << 20  # bytes of one message between the two processes
BUILTINS = dict(vars(builtins))
EXCEPTIONS = {
    name: value for name, value in BUILTINS.items() if isinstance(value, type) and issubclass(value, BaseException)
}
PR_SET_DUMPABLE = 4
# rfai's own value encoding (`wire.py`), loaded by the zygote
encode, decode_value = sys.modules["rfai_wire"].encode, sys.modules["rfai_wire"].decode_value
Unencodable, Undecodable = sys.modules["rfai_wire"].Unencodable, sys.modules["rfai_wire"].Undecodable


def why(exc: BaseException) -> str:
    try:
        text = type(exc).__name__ + (": " + str(exc) if str(exc) else "")
    except Exception:
        text = "an exception that cannot be shown"
    return text[:200].replace("\n", " ")


_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class Pipe:
    """JSON lines over a pair of file descriptors, each line bounded."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd, self.buffer = read_fd, write_fd, b""

    def send(self, message) -> None:
        data = (_dumps(message) + "\n").encode()
        if len(data) > MAX_LINE:
            data = (json.dumps({"raised": "MemoryError", "why": "message too large"}) + "\n").encode()
        while data:
            data = data[os.write(self.write_fd, data) :]

    def receive(self):
        """The next message, or None when the other side closed or broke the protocol."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.read_fd, 1 << 12)
            if not chunk or len(self.buffer) > MAX_LINE:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            return None


# --- the program's side -------------------------------------------------------------------------


def serve_program(pipe: Pipe) -> None:
    """Load the candidate, then answer requests until the judge closes the pipe. Nothing here
    is trusted: the candidate may rewrite any of it, and can only change its own answers."""
    load = _compiled_candidate()  # compiling runs none of it: no need to wait for the go
    if pipe.receive() != {"op": "go"}:  # the cases are out of reach now
        return
    try:
        solution = load()
    except BaseException as exc:
        pipe.send({"load": "fail", "why": why(exc)})
        return
    objects: list = []  # handles: index -> object

    def out(value):
        try:
            return {"v": encode(value)}
        except Unencodable:
            objects.append(value)
            return {"r": len(objects) - 1}

    def into(wire):
        return objects[wire["r"]] if "r" in wire else decode_value(wire["v"])

    # A name that shadows a builtin is not exported: the tests' `len` is Python's.
    exports = {
        name: out(value) for name, value in solution.items() if not name.startswith("__") and name not in BUILTINS
    }
    pipe.send({"load": "ok", "exports": exports})
    while (request := pipe.receive()) is not None:
        try:
            pipe.send(_answer(request, solution, into, out))
        except BaseException as exc:  # noqa: B902 - any exception is the program's answer
            mro = type.__dict__["__mro__"].__get__(type(exc))
            nearest = next((k.__name__ for k in mro if EXCEPTIONS.get(k.__name__) is k), "BaseException")
            pipe.send({"raised": nearest, "why": why(exc)})


def _compiled_candidate():
    """`candidate.py` compiled now; returns the call that runs it as a module and returns its
    namespace (raising what compiling or running it raised)."""
    with open("candidate.py", encoding="utf-8") as handle:
        source = handle.read()
    try:
        code = compile(source, "solution.py", "exec")
    except BaseException as exc:  # noqa: B902 - reported when the module would have run
        failure = exc

        def load():
            raise failure

        return load

    def load():
        solution = {"__name__": "solution", "__builtins__": builtins}
        exec(code, solution)
        return solution

    return load


def _answer(request: dict, solution: dict, into, out) -> dict:
    op = request["op"]
    if op == "inside":  # an undecidable case, run here as it was written
        namespace = {name: value for name, value in solution.items() if name not in BUILTINS}
        namespace.update(__builtins__=dict(BUILTINS), __name__="rfai_case")
        exec(compile(request["source"], "test.py", "exec"), namespace)
        return {"v": None}
    target = into(request["target"])
    if op == "call":
        args = [into(arg) for arg in request["args"]]
        kwargs = {key: into(arg) for key, arg in request["kwargs"].items()}
        result = out(target(*args, **kwargs))
        # What the call did to the mutable arguments it was given, for the judge's own copies.
        after = {}
        for index, (wire, arg) in enumerate(zip(request["args"], args)):
            if "v" in wire and type(arg) in (list, dict, set) and (now := encode(arg)) != wire["v"]:
                after[index] = now
        return {**result, "after": after}
    argument = into(request["arg"]) if "arg" in request else None
    answers = {
        "getattr": lambda: getattr(target, request["name"]),
        "setattr": lambda: setattr(target, request["name"], argument),
        "getitem": lambda: target[argument],
        "setitem": lambda: target.__setitem__(into(request["key"]), argument),
        "len": lambda: len(target),
        "iter": lambda: iter(target),
        "next": lambda: next(target),
        "contains": lambda: argument in target,
        "str": lambda: str(target),
        "repr": lambda: repr(target),
    }
    return out(answers[op]())


# --- the judge's side ---------------------------------------------------------------------------


class Undecidable(BaseException):
    """The case needs the program's own object to decide: a BaseException, so a test's
    `except Exception` cannot swallow it (and the case is marked even if one does)."""


class ProgramGone(BaseException):
    """The program died or broke the protocol mid-case."""


class Remote:
    """A value the program kept: the judge may use it, never ask it for a verdict."""

    __slots__ = ("_rfai_handle",)

    def __init__(self, handle: int) -> None:
        object.__setattr__(self, "_rfai_handle", handle)

    def __getattr__(self, name):
        return JUDGE.ask("getattr", self, name=name)

    def __setattr__(self, name, value):
        JUDGE.ask("setattr", self, name=name, arg=value)

    def __call__(self, *args, **kwargs):
        return JUDGE.call(self, args, kwargs)

    def __getitem__(self, key):
        return JUDGE.ask("getitem", self, arg=key)

    def __setitem__(self, key, value):
        JUDGE.ask("setitem", self, key=JUDGE.wire(key), arg=value)

    def __len__(self):
        return JUDGE.ask("len", self)

    def __iter__(self):
        return JUDGE.ask("iter", self)

    def __next__(self):
        return JUDGE.ask("next", self)

    def __contains__(self, item):
        return JUDGE.ask("contains", self, arg=item)

    def __str__(self):
        return JUDGE.ask("str", self)

    def __repr__(self):
        return JUDGE.ask("repr", self)

    def __format__(self, spec):
        return str(self) if not spec else self._rfai_undecidable()

    def _rfai_undecidable(self, *_args):
        JUDGE.undecidable = True
        raise Undecidable("the program's own object decides")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _rfai_undecidable
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _rfai_undecidable
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __abs__ = _rfai_undecidable
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __invert__ = __index__ = _rfai_undecidable
    __int__ = __float__ = __complex__ = __round__ = __enter__ = __exit__ = _rfai_undecidable


_SCALARS = (int, str, bool, type(None))


class Judge:
    def __init__(self, pipe: Pipe) -> None:
        self.pipe, self.undecidable = pipe, False

    def wire(self, value) -> dict:
        if type(value) in _SCALARS:  # the common case, without `encode`'s set-up
            return {"v": value if type(value) is not int else {"i": str(value)}}
        if type(value) is Remote:
            return {"r": object.__getattribute__(value, "_rfai_handle")}
        try:
            return {"v": encode(value)}
        except Unencodable:  # one of the test's own objects (a lambda, a class): the program may not run it
            self.undecidable = True
            raise Undecidable("the test hands the program an object of its own") from None

    def request(self, message: dict):
        try:
            self.pipe.send(message)
        except OSError:
            raise ProgramGone("the program ended") from None
        reply = self.pipe.receive()
        if not isinstance(reply, dict):
            raise ProgramGone("the program ended or broke the protocol")
        if "raised" in reply:
            raise _built_in(str(reply["raised"]), str(reply.get("why", ""))[:200])
        return reply

    def value(self, reply: dict):
        if "r" in reply:
            return Remote(int(reply["r"]))
        try:
            return decode_value(reply.get("v"))
        except (Undecodable, RecursionError):
            raise ProgramGone("the program sent a value that is not plain data") from None

    def ask(self, op: str, target: Remote, **fields):
        if "arg" in fields:
            fields["arg"] = self.wire(fields["arg"])
        return self.value(self.request({"op": op, "target": self.wire(target), **fields}))

    def call(self, target: Remote, args: tuple, kwargs: dict):
        wires = [self.wire(arg) for arg in args]
        reply = self.request(
            {
                "op": "call",
                "target": self.wire(target),
                "args": wires,
                "kwargs": {str(k): self.wire(v) for k, v in kwargs.items()},
            }
        )
        for index, encoded in (reply.get("after") or {}).items():
            _apply_mutation(args[int(index)], self.value({"v": encoded}))
        return self.value(reply)


def _built_in(name: str, message: str) -> BaseException:
    """An instance of the built-in exception class `name` (some, like UnicodeDecodeError, take
    more than a message: they are made without calling their constructor)."""
    cls = EXCEPTIONS.get(name, BaseException)
    try:
        return cls(message)
    except TypeError:
        exc = cls.__new__(cls)
        exc.args = (message,)
        return exc


def _apply_mutation(arg, now) -> None:
    """Give the test's own argument the state the program left its copy in."""
    if type(arg) is not type(now):
        raise ProgramGone("the program changed an argument's type")
    if type(arg) is list:
        arg[:] = now
    else:
        arg.clear()
        arg.update(now)


JUDGE: Judge = None  # type: ignore[assignment]  # the one judge of this process


def judge_cases(emit) -> int:
    global JUDGE
    try:
        libc = ctypes.CDLL(None)
        # Not dumpable: the program (same uid) cannot read this process's memory or descriptors.
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        # One CPU for both processes: each call is a ping-pong, and waking the other side on
        # another CPU costs more than the call (an inter-processor interrupt, in a VM an exit).
        os.sched_setaffinity(0, {libc.sched_getcpu()})
    except (OSError, AttributeError):
        pass
    requests_r, requests_w = os.pipe()  # judge -> program
    answers_r, answers_w = os.pipe()  # program -> judge
    program = _fork()
    if program == 0:
        for fd in (3, requests_w, answers_r):
            os.close(fd)
        serve_program(Pipe(requests_r, answers_w))
        os._exit(0)
    os.close(requests_r)
    os.close(answers_w)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a program that ended is an error, not our death
    with open("cases.json", encoding="utf-8") as handle:
        cases = json.load(handle)
    os.unlink("cases.json")
    # Modules the program may have written into the box are not the judge's to import.
    sys.path = [path for path in sys.path if path and not os.path.realpath(path).startswith(os.getcwd())]
    JUDGE = Judge(Pipe(answers_r, requests_w))
    try:
        try:
            load = JUDGE.request({"op": "go"})
        except BaseException:  # noqa: B902 - the program's answer, whatever it is, is a failed load
            load = None
        if not isinstance(load, dict) or load.get("load") != "ok":
            why_not = str(load.get("why", "failed"))[:200] if isinstance(load, dict) else "never finished"
            emit({"load": "fail", "why": why_not})
            return _program_status(program)
        emit({"load": "ok"})
        exports = load.get("exports") if isinstance(load.get("exports"), dict) else {}
        for index, case in enumerate(cases):
            event = _judge_case(str(case), exports)
            emit({"case": index, **event})
            if event.get("gone"):  # the cases after it count as never finished
                return _program_status(program)
        return 0
    finally:  # reaped, so the run's CPU time includes the program's
        try:
            os.kill(program, signal.SIGKILL)
            os.waitpid(program, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # already reaped by `_program_status`


def _fork() -> int:
    """fork, waiting out a moment of EAGAIN (a previous program's processes still being reaped)."""
    for _ in range(100):
        try:
            return os.fork()
        except BlockingIOError:
            __import__("time").sleep(0.02)
    return os.fork()


def _program_status(program: int) -> int:
    """The judge's exit status once the program has ended early: the program's own (a signal as
    128 + its number, as a shell reports it), so the run says why (a limit, a crash)."""
    for _ in range(50):  # it closed the pipe as it exited: give it a moment to finish dying
        pid, status = os.waitpid(program, os.WNOHANG)
        if pid:
            break
        __import__("time").sleep(0.01)
    else:
        return 0
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _judge_case(source: str, exports: dict) -> dict:
    JUDGE.undecidable = False
    namespace = {}
    try:
        for name, wire in exports.items():
            namespace[str(name)] = JUDGE.value(wire)
        namespace.update(__builtins__=dict(BUILTINS), __name__="rfai_case")
        exec(compile(source, "test.py", "exec"), namespace)
    except ProgramGone as exc:
        return {"error": str(exc), "gone": True}
    except Undecidable:
        pass
    except BaseException as exc:
        if not JUDGE.undecidable:
            return {"error": _failure(exc, source)}
    else:
        if not JUDGE.undecidable:
            return {"done": True}
    try:  # decided by the program's own objects: its process runs the case, and says how it went
        JUDGE.request({"op": "inside", "source": source})
        return {"done": True, "inside": True}
    except ProgramGone as exc:
        return {"error": str(exc), "inside": True, "gone": True}
    except BaseException as exc:
        return {"error": why(exc), "inside": True}


def _failure(exc: BaseException, source: str) -> str:
    """Why a case failed: the exception, and for a failed assert its line of the test."""
    if type(exc) is not AssertionError or str(exc):
        return why(exc)
    trace, line = exc.__traceback__, None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "test.py":
            line = trace.tb_lineno
        trace = trace.tb_next
    lines = source.splitlines()
    if line is None or not 0 < line <= len(lines):
        return "AssertionError"
    return f"failed: {lines[line - 1].strip()}"[:200]


# --- entry --------------------------------------------------------------------------------------


def main(mode: str) -> int:
    def emit(event: dict) -> None:  # every event is short: its texts are cut to 200 characters
        os.write(3, (json.dumps(event) + "\n").encode())

    if mode == "tests":
        return judge_cases(emit)
    try:
        _compiled_candidate()()
    except BaseException as exc:
        emit({"load": "fail", "why": why(exc)})
        return 0
    emit({"load": "ok"})
    return 0
