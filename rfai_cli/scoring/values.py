"""Values that come out of a sandboxed program, and the checks applied to them outside it.

A program under test never decides a split assert: it reports the value of the expression
under test (`{"case": i, "obs": k, "value": ...}`, encoded by exact type by the harness of its
language), and a `Check` built from the test's expected literal, which never entered the box,
decides here. Decoding builds only plain Python data (and `Variant` for Rust's enums), so no
code of the program's runs when values are compared (the encoding: `wire.py`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .wire import Undecodable, Variant, decode_value

__all__ = ["Check", "Variant", "decode_value", "judge_case", "read_events"]

MAX_EVENTS_BYTES = 8 * 1024 * 1024  # of a results channel read back


@dataclass(frozen=True)
class Check:
    """What the observed value must satisfy. `kind`: eq, ne, is, is_not, truthy, falsy, lt, le,
    gt, ge, close (|value - expected| < tolerance, or <= when not `strict`), in, not_in, raises
    (the call raised one of the `expected` built-in exception classes, or a subclass of one)."""

    kind: str
    expected: Any = None
    tolerance: float = 0.0
    strict: bool = True
    label: str = ""  # the test's own text of this condition, for reasons

    def labelled(self, label: str) -> "Check":
        return Check(self.kind, self.expected, self.tolerance, self.strict, label[:120])

    def holds(self, value: Any) -> bool:
        try:
            return bool(self._holds(value))
        except (TypeError, ValueError, OverflowError, ArithmeticError, RecursionError):
            return False

    def _holds(self, value: Any) -> bool:
        kind, expected = self.kind, self.expected
        if kind == "eq":
            return value == expected
        if kind == "ne":
            return value != expected
        if kind in ("is", "is_not"):
            same = value is expected or (type(value) is type(expected) and value == expected)
            return same if kind == "is" else not same
        if kind == "raises":  # the harness reports ("raised", [built-in classes it is an instance of])
            return isinstance(value, tuple) and value[:1] == ("raised",) and bool(set(value[1]) & expected)
        if kind in ("truthy", "falsy"):
            return bool(value) == (kind == "truthy")
        if kind in ("in", "not_in"):
            return (value in expected) == (kind == "in")
        if kind == "close":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            distance = abs(value - expected)
            return not math.isnan(distance) and (
                distance < self.tolerance if self.strict else distance <= self.tolerance
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return {"lt": value < expected, "le": value <= expected, "gt": value > expected, "ge": value >= expected}[kind]


@dataclass
class CaseReport:
    """What one case reported: its observed values (or why one could not be encoded), whether
    it ran to its end, and its error. A case that reports any of these twice is void."""

    values: dict[int, Any]
    done: bool = False
    error: str | None = None
    void: bool = False
    inside: bool = False  # the program's own code decided it (python: see `_pyharness.py`)


def read_events(text: str, total: int) -> tuple[list[CaseReport], dict | None]:
    """Parse a results channel: (one report per case, the load event or None). Lines that are
    not events of a known case are ignored; a case with a duplicated event is marked void, so
    printing guesses cannot add passes."""
    reports = [CaseReport({}) for _ in range(total)]
    load = None
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(event, dict):
            continue
        if "load" in event:
            load = event if load is None else {"load": "fail", "why": "reported twice"}
            continue
        case = event.get("case")
        if not isinstance(case, int) or isinstance(case, bool) or not 0 <= case < total:
            continue
        report = reports[case]
        if "obs" in event:
            number = event["obs"]
            if not isinstance(number, int) or number in report.values:
                report.void = True
                continue
            if "error" in event:
                report.values[number] = _Unreadable(str(event["error"])[:200])
                continue
            try:
                report.values[number] = decode_value(event.get("value"))
            except (Undecodable, RecursionError) as exc:
                report.values[number] = _Unreadable(str(exc))
        elif event.get("done") is True:
            report.void |= report.done
            report.done = True
            report.inside |= event.get("inside") is True
        elif "error" in event:
            report.void |= report.error is not None
            report.error = str(event["error"])[:200]
            report.inside |= event.get("inside") is True
    return reports, load


@dataclass(frozen=True)
class _Unreadable:
    why: str


def judge_case(report: CaseReport, checks: list[Check]) -> str | None:
    """None when the case passed, else why not (one short phrase)."""
    if report.void:
        return "reported a result twice"
    if report.error is not None:
        return report.error
    if not report.done:
        return "never finished"
    for number, check in enumerate(checks):
        if number not in report.values:
            return f"check {number + 1} was never reached"
        value = report.values[number]
        if isinstance(value, _Unreadable):
            return f"check {number + 1}: {value.why}"
        if not check.holds(value):
            return f"{check.label or f'check {number + 1}'} failed: got {_short(value)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
