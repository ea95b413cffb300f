"""The trusted side of a Python program's run, executed by the zygote's contained child.

It reads the candidate (`candidate.py`) and the cases (`cases.json`, written by `programs.py`)
from its own box, runs each case in a fresh namespace, and writes one JSON line per event to
fd 3: observed values (`{"case": i, "obs": k, "value": ...}`), a case that ran to its end
(`{"case": i, "done": true}`) or failed (`{"case": i, "error": "..."}`), and whether the module
loaded. It holds no expected value and decides no verdict for a split assert: `programs.py`
compares the values outside. A candidate that tampers with this process can only change what
it reports about itself, never learn what it should have reported.

Values are encoded by exact type (no subclass, no custom object, so no `__eq__` of the
candidate's ever runs outside): see `encode`.
"""

import builtins
import json
import os

MAX_DEPTH = 64  # nesting of one observed value
MAX_ITEMS = 100_000  # items in one observed value
MAX_LINE = 1 << 20  # characters of one event line
BUILTINS = dict(vars(builtins))  # taken before the candidate runs: tests see the real ones
_exec, _compile = exec, compile  # likewise for the harness itself (the candidate may patch builtins)
EXCEPTIONS = {
    name: value for name, value in BUILTINS.items() if isinstance(value, type) and issubclass(value, BaseException)
}


class Unencodable(Exception):
    pass


def encode(value):
    """Plain data as JSON, tagged by exact type (see `programs.decode_value`)."""
    budget = [MAX_ITEMS]

    def walk(item, depth):
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise Unencodable("value too large or too deeply nested")
        kind = type(item)
        if item is None or kind is bool or kind is str:
            return item
        if kind is int:
            return {"i": str(item)}
        if kind is float:
            return {"f": repr(item)}
        if kind is complex:
            return {"c": [repr(item.real), repr(item.imag)]}
        if kind is bytes:
            return {"y": item.hex()}
        if kind is list:
            return [walk(x, depth + 1) for x in item]
        if kind is tuple:
            return {"t": [walk(x, depth + 1) for x in item]}
        if kind is set or kind is frozenset:
            return {"s" if kind is set else "z": [walk(x, depth + 1) for x in item]}
        if kind is dict:
            return {"d": [[walk(k, depth + 1), walk(v, depth + 1)] for k, v in item.items()]}
        raise Unencodable(f"a {kind.__name__!s:.40} is not plain data")

    return walk(value, 0)


def why(exc: BaseException) -> str:
    try:
        text = type(exc).__name__ + (": " + str(exc) if str(exc) else "")
    except Exception:
        text = "an exception that cannot be shown"
    return text[:200].replace("\n", " ")


def main(mode: str) -> int:
    write, dumps = os.write, json.dumps

    def emit(event: dict) -> None:
        line = dumps(event)
        if len(line) > MAX_LINE:
            line = dumps({key: value for key, value in event.items() if key != "value"} | {"error": "value too large"})
        write(3, (line + "\n").encode())

    with open("candidate.py", encoding="utf-8") as handle:
        source = handle.read()
    with open("cases.json", encoding="utf-8") as handle:
        cases = json.load(handle)
    solution = {"__name__": "solution", "__builtins__": builtins}
    try:
        _exec(_compile(source, "solution.py", "exec"), solution)
    except BaseException as exc:
        emit({"load": "fail", "why": why(exc)})
        return 0
    emit({"load": "ok"})
    if mode == "load":
        return 0
    for index, case in enumerate(cases):
        current = index

        def observe(number, value, case=current):
            try:
                emit({"case": case, "obs": number, "value": encode(value)})
            except Unencodable as exc:
                emit({"case": case, "obs": number, "error": str(exc)})
            return value

        def raises(number, call, case=current):
            """Report what calling `call` raised, as the built-in classes the exception is an
            instance of (by identity: a class of the candidate's named ValueError is not one)."""
            try:
                call()
            except BaseException as exc:  # noqa: B902 - any exception is an observation here
                emit(
                    {
                        "case": case,
                        "obs": number,
                        "value": encode(("raised", sorted(n for n, k in EXCEPTIONS.items() if isinstance(exc, k)))),
                    }
                )
            else:
                emit({"case": case, "obs": number, "value": encode(("returned",))})

        namespace = {name: value for name, value in solution.items() if name not in BUILTINS}
        namespace.update(
            __builtins__=dict(BUILTINS), __name__="rfai_case", __rfai_observe__=observe, __rfai_raises__=raises
        )
        try:
            _exec(_compile(case, f"test_{index}.py", "exec"), namespace)
        except BaseException as exc:
            emit({"case": index, "error": why(exc)})
        else:
            emit({"case": index, "done": True})
    return 0
