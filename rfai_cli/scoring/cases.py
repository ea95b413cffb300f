"""Split each test case into what runs inside the box and what is decided outside it.

An assert of the common shapes (`CALL == EXPECTED`, `!=`, `is None/True/False`, `<`, `in`,
`abs(CALL - EXPECTED) < TOL`, a bare `CALL` or `not CALL`, and `and`-chains of those; in
python also `try: CALL / except ValueError: pass / else: raise ...`) whose
expected side is a literal becomes an observation: the box reports the value of `CALL`, and a
`Check` holding `EXPECTED` decides here. The expected literal is removed from the code that
enters the box. Anything else (a computed expected value, an assert in a loop, a HumanEval
`check` kept whole, a C++ test with its own `main`) still runs, as an in-box verdict, and the
case is marked `inside`: weaker, since the program could forge it, and reported as such.

A bare condition (`CALL`, `not CALL`) is split only when it is a *primary* (a call, name,
attribute or subscript, not an operator applied to program values), so the program cannot
make its own comparison true; a compared expression may be anything, since the value it must
equal is not in the box.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .literals import NotLiteral, cpp_literal, rust_literal
from .static import blank_comments_and_strings, parse_python
from .values import Check

OBSERVE = "__rfai_observe__"  # the python harness's observation function
RAISES = "__rfai_raises__"  # ... and its "what did calling this raise" observation


@dataclass(frozen=True)
class SplitCase:
    """`source`: the case as it runs in the box; `checks[k]` judges observation k."""

    source: str
    checks: list[Check] = field(default_factory=list)
    inside: bool = False  # some of the verdict is decided inside the box


# --- python -------------------------------------------------------------------------------------

_FLIP = {ast.Lt: "gt", ast.LtE: "ge", ast.Gt: "lt", ast.GtE: "le"}
_ORDER = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_PRIMARY = (ast.Call, ast.Name, ast.Attribute, ast.Subscript)


def _literal(node: ast.AST):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _python_check(test: ast.expr) -> tuple[ast.expr, Check] | None:
    """(expression to observe, its check), or None when this condition cannot be split."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and isinstance(test.operand, _PRIMARY):
        return test.operand, Check("falsy")
    if isinstance(test, _PRIMARY):
        return test, Check("truthy")
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    right_known, expected = _literal(right)
    left_known, expected_left = _literal(left)
    if isinstance(op, (ast.Eq, ast.NotEq)):
        kind = "eq" if isinstance(op, ast.Eq) else "ne"
        if right_known and not left_known:
            return left, Check(kind, expected)
        if left_known and not right_known:
            return right, Check(kind, expected_left)
        return None
    if isinstance(op, (ast.Is, ast.IsNot)) and right_known and expected in (None, True, False) and not left_known:
        return left, Check("is" if isinstance(op, ast.Is) else "is_not", expected)
    if isinstance(op, (ast.In, ast.NotIn)) and right_known and not left_known:
        return left, Check("in" if isinstance(op, ast.In) else "not_in", expected)
    if type(op) in _ORDER and right_known and isinstance(expected, (int, float)):
        close = _python_tolerance(left, expected, isinstance(op, ast.Lt), type(op))
        if close:
            return close
        return left, Check(_ORDER[type(op)], expected)
    if type(op) in _FLIP and left_known and isinstance(expected_left, (int, float)) and not right_known:
        return right, Check(_FLIP[type(op)], expected_left)
    return None


def _python_tolerance(left: ast.expr, tolerance, strict: bool, op) -> tuple[ast.expr, Check] | None:
    """`abs(X - L) < T` (or `abs(L - X)`): observe X, check its distance to L outside."""
    if op not in (ast.Lt, ast.LtE) or not (
        isinstance(left, ast.Call)
        and isinstance(left.func, ast.Name)
        and left.func.id == "abs"
        and len(left.args) == 1
        and not left.keywords
    ):
        return None
    inner = left.args[0]
    if not (isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub)):
        return None
    for observed, other in ((inner.left, inner.right), (inner.right, inner.left)):
        known, target = _literal(other)
        if known and isinstance(target, (int, float)) and isinstance(observed, _PRIMARY):
            return observed, Check("close", target, float(tolerance), strict)
    return None


def _conjuncts(test: ast.expr) -> list[ast.expr]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [part for value in test.values for part in _conjuncts(value)]
    return [test]


def _python_raises(statement: ast.stmt) -> tuple[ast.expr, Check] | None:
    """`try: CALL / except BuiltinError: pass / else: raise ...`: observe what CALL raises."""
    if not (
        isinstance(statement, ast.Try)
        and len(statement.body) == 1
        and len(statement.handlers) == 1
        and not statement.finalbody
        and len(statement.orelse) == 1
    ):
        return None
    body, handler, orelse = statement.body[0], statement.handlers[0], statement.orelse[0]
    call = body.value if isinstance(body, (ast.Expr, ast.Assign)) else None
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    if call is None or not all(isinstance(name, ast.Name) and _is_builtin_exception(name.id) for name in caught):
        return None
    if not all(isinstance(s, ast.Pass) for s in handler.body) or not isinstance(orelse, (ast.Raise, ast.Assert)):
        return None
    return ast.Lambda(ast.arguments([], [], None, [], [], None, []), call), Check(
        "raises", frozenset(name.id for name in caught)
    )


def _is_builtin_exception(name: str) -> bool:
    import builtins

    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def split_python(source: str, entry_point: str | None) -> SplitCase:
    try:
        tree = parse_python(source)
        imported = {
            (alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        body: list[ast.stmt] = []
        checks: list[Check] = []
        inside = False
        for statement in tree.body:
            raises = _python_raises(statement)
            if raises is not None:
                call = ast.Call(ast.Name(RAISES, ast.Load()), [ast.Constant(len(checks)), raises[0]], [])
                body.append(ast.Expr(call))
                checks.append(
                    raises[1].labelled(
                        f"{ast.unparse(raises[0].body)} raises " + " or ".join(sorted(raises[1].expected))
                    )
                )
                continue
            if not isinstance(statement, ast.Assert):
                inside |= any(isinstance(node, ast.Assert) for node in ast.walk(statement))
                body.append(statement)
                continue
            for part in _conjuncts(statement.test):
                split = _python_check(part)
                if split is None or any(isinstance(n, ast.Name) and n.id in imported for n in ast.walk(split[0])):
                    body.append(ast.Assert(test=part))  # a module the program may have patched: inside
                    inside = True
                    continue
                call = ast.Call(ast.Name(OBSERVE, ast.Load()), [ast.Constant(len(checks)), split[0]], [])
                body.append(ast.Expr(call))
                checks.append(split[1].labelled(ast.unparse(part)))
        defines_check = any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in tree.body)
        if entry_point and defines_check:  # HumanEval kept whole: check(candidate) decides, inside
            body.append(parse_python(f"check({entry_point})").body[0])
            inside = True
        if not checks:
            inside = True  # only "ran without raising" says anything
        return SplitCase(ast.unparse(ast.fix_missing_locations(ast.Module(body, []))), checks, inside)
    except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError):
        return SplitCase(source, [], True)  # it fails in the box the same way, or passes as in-box


# --- brace languages: shared scanning -----------------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def _depths(bare: str, angles: bool = False) -> list[int]:
    """Bracket depth before each character of `bare` (comments and strings already blanked).
    With `angles`, Rust turbofish `::<...>` counts as brackets too."""
    depths, depth, angle = [], 0, 0
    for index, char in enumerate(bare):
        depths.append(depth + angle)
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        elif angles and char == "<" and (angle or bare[max(0, index - 2) : index] == "::"):
            angle += 1
        elif angles and char == ">" and angle and bare[index - 1 : index] != "-":
            angle -= 1
    depths.append(depth + angle)
    return depths


def _split_top(text: str, bare: str, separator: str, angles: bool = False) -> list[tuple[str, str]]:
    """`text` cut at each `separator` outside brackets: [(original piece, blanked piece)]."""
    depths = _depths(bare, angles)
    pieces, start, index = [], 0, 0
    while True:
        index = bare.find(separator, index)
        if index < 0:
            break
        if depths[index] == 0:
            pieces.append((text[start:index], bare[start:index]))
            start = index + len(separator)
        index += len(separator)
    pieces.append((text[start:], bare[start:]))
    return pieces


def _is_primary(bare: str) -> bool:
    """No operator outside brackets (`::`, `.` and `->` are member access, not operators)."""
    depths = _depths(bare)
    cleaned = bare.replace("::", "  ").replace("->", "  ")
    return bool(bare.strip()) and not any(
        char in "+-*/%<>=&|^?,!~" and depths[i] == 0 for i, char in enumerate(cleaned)
    )


def _is_operand(bare: str) -> bool:
    """Nothing outside brackets that binds looser than `==` (or could be a template bracket), so
    the text before or after a top-level `==` really is that comparison's operand."""
    depths = _depths(bare)
    cleaned = bare.replace("::", "  ").replace("->", "  ")
    return bool(bare.strip()) and not any(char in "<>?:=&|^" and depths[i] == 0 for i, char in enumerate(cleaned))


def _comparison(text: str, bare: str, literal) -> tuple[str, Check] | None:
    """Split one condition of a brace language: (expression to observe, check) or None."""
    stripped = bare.strip()
    for operator, kind in (("==", "eq"), ("!=", "ne")):
        parts = _split_top(text, bare, operator)
        if len(parts) == 2:
            (left, left_bare), (right, right_bare) = parts
            for observed, observed_bare, other in ((left, left_bare, right), (right, right_bare, left)):
                try:
                    expected = literal(other.strip())
                except (NotLiteral, ValueError, RecursionError):
                    continue
                if _is_operand(observed_bare):
                    return observed.strip(), Check(kind, expected)
            return None
        if len(parts) > 2:
            return None
    if stripped.startswith("!") and _is_primary(stripped[1:]):
        offset = bare.index("!") + 1
        return text[offset:].strip(), Check("falsy")
    if _is_primary(bare):
        return text.strip(), Check("truthy")
    return None


# --- C++ ----------------------------------------------------------------------------------------

_CPP_ASSERT = re.compile(r"(?<![\w:.>])assert\s*\(")
_CPP_TOLERANCE = re.compile(r"^\s*(?:std::)?f?abs\s*\(")


def _cpp_tolerance(text: str, bare: str) -> tuple[str, Check] | None:
    """`std::abs(X - L) < T`: observe X."""
    head = _CPP_TOLERANCE.match(bare)
    if not head:
        return None
    opening = head.end() - 1
    depths = _depths(bare)
    closing = next((i for i in range(opening + 1, len(bare)) if bare[i] == ")" and depths[i] == 1), None)
    if closing is None:
        return None
    rest = bare[closing + 1 :].strip()
    match = re.fullmatch(r"(<=?)\s*(.+)", rest)
    if not match:
        return None
    try:
        tolerance = cpp_literal(text[closing + 1 :].strip()[len(match.group(1)) :].strip())
    except (NotLiteral, ValueError):
        return None
    parts = _split_top(text[opening + 1 : closing], bare[opening + 1 : closing], "-")
    return _distance_check(parts, tolerance, cpp_literal, match.group(1) == "<")


def _distance_check(parts: list[tuple[str, str]], tolerance, literal, strict: bool) -> tuple[str, Check] | None:
    """`X - L` (or `L - X`) within `tolerance`: observe X, check its distance to L outside."""
    if len(parts) != 2 or not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool):
        return None
    for (observed, observed_bare), (other, _) in (parts, parts[::-1]):
        try:
            target = literal(other.strip())
        except (NotLiteral, ValueError):
            continue
        if isinstance(target, (int, float)) and _is_primary(observed_bare):
            return observed.strip(), Check("close", target, float(tolerance), strict)
    return None


def _rewrite_asserts(case: str, pattern: re.Pattern, split, observe_call, inside_call) -> SplitCase:
    """Shared by C++ and Rust: replace each top-level assert statement of `case` by observations
    (`split(arguments, blanked, macro)` gives, per condition, (expression, check) or (None,
    condition); None for a statement kept whole) written by `observe_call(k, expression)`, and
    the rest by in-box checks written by `inside_call(condition, macro)`."""
    bare = blank_comments_and_strings(case)
    depths = _depths(bare)
    out, checks, inside, position = [], [], False, 0
    for match in pattern.finditer(bare):
        start, opening = match.start(), match.end() - 1
        before = bare[:start].rstrip()
        closing = _matching(bare, opening)
        if closing is None or depths[start] != 0 or (before and before[-1] not in ";{}"):
            continue
        after = bare[closing + 1 :].lstrip()
        if not after.startswith(";"):
            continue
        end = len(bare) - len(after) + 1
        pieces = split(case[opening + 1 : closing], bare[opening + 1 : closing], match.group())
        out.append(case[position:start])
        if pieces is None:
            out.append(inside_call(case[opening + 1 : closing], match.group()))
            inside = True
        else:
            for observed, check in pieces:
                if observed is None:  # `check` is the condition's text
                    out.append(inside_call(check, match.group()))
                    inside = True
                    continue
                out.append(observe_call(len(checks), observed))
                checks.append(check)
        position = end
    out.append(case[position:])
    source = "".join(out)
    nested = pattern.search(blank_comments_and_strings(source))
    return SplitCase(source, checks, inside or nested is not None or not checks)


def _matching(bare: str, opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(bare)):
        if bare[index] in _OPEN:
            depth += 1
        elif bare[index] in _CLOSE:
            depth -= 1
            if depth == 0:
                return index
    return None


def _cpp_conditions(text: str, bare: str, _macro: str) -> list[tuple[str | None, Check | str]]:
    out = []
    for piece, piece_bare in _split_top(text, bare, "&&"):
        split = _cpp_tolerance(piece, piece_bare) or _comparison(piece, piece_bare, cpp_literal)
        out.append((split[0], split[1].labelled(" ".join(piece.split()))) if split else (None, piece))
    return out


def split_cpp(case: str) -> SplitCase:
    """The case as a C++ function body (parameters `rfai_out`, `rfai_case`): observations through
    `rfai::observe`, in-box asserts through `rfai::check` (a function, not a macro)."""
    split = _rewrite_asserts(
        case,
        _CPP_ASSERT,
        _cpp_conditions,
        lambda k, expression: f"rfai::observe(rfai_out, rfai_case, {k}, ({expression}));",
        lambda condition, _macro: f"rfai::check(static_cast<bool>({condition}));",
    )
    source = _CPP_ASSERT.sub("rfai::check(", split.source)  # asserts left inside loops and lambdas
    return SplitCase(source, split.checks, split.inside)


# --- Rust ---------------------------------------------------------------------------------------

_RUST_ASSERT = re.compile(r"(?<![\w:])(?:debug_)?assert(?:_eq|_ne)?!\s*\(")


def _rust_conditions(text: str, bare: str, macro: str) -> list[tuple[str | None, Check | str]] | None:
    kind = "eq" if "_eq" in macro else "ne" if "_ne" in macro else None
    if kind is None:
        first = _split_top(text, bare, ",", angles=True)[0]  # a message after the condition is dropped
        out = []
        for piece, piece_bare in _split_top(first[0], first[1], "&&", angles=True):
            split = _rust_tolerance(piece, piece_bare) or _comparison(piece, piece_bare, rust_literal)
            out.append((split[0], split[1].labelled(" ".join(piece.split()))) if split else (None, piece))
        return out
    arguments = _split_top(text, bare, ",", angles=True)
    if len(arguments) < 2:
        return None
    (left, _), (right, _) = arguments[:2]
    for observed, other in ((left, right), (right, left)):
        try:
            expected = rust_literal(other.strip())
        except (NotLiteral, ValueError, RecursionError):
            continue
        label = f"{macro.split('!')[0].strip()}!({' '.join(text.split())})"
        return [(observed.strip(), Check(kind, expected).labelled(label))]  # a macro argument is a whole expression
    return None


def _rust_tolerance(text: str, bare: str) -> tuple[str, Check] | None:
    """`(X - L).abs() < T`: observe X."""
    match = re.fullmatch(r"\s*\((?P<inner>.*)\)\.abs\(\)\s*(?P<op><=?)\s*(?P<tol>\S.*)", bare, re.S)
    if not match or _matching(bare, bare.index("(")) != match.end("inner"):
        return None
    try:
        tolerance = rust_literal(text[match.start("tol") :].strip())
    except (NotLiteral, ValueError):
        return None
    parts = _split_top(text[match.start("inner") : match.end("inner")], match.group("inner"), "-", angles=True)
    return _distance_check(parts, tolerance, rust_literal, match.group("op") == "<")


def _rust_inside(condition: str, macro: str) -> str:
    # By path, so a `macro_rules! assert` of the program's cannot change what runs.
    return f"::core::{macro.split('!')[0].strip()}!({condition});"


def split_rust(case: str) -> SplitCase:
    split = _rewrite_asserts(
        case,
        _RUST_ASSERT,
        _rust_conditions,
        lambda k, expression: f"(&crate::rfai::Probe(&({expression}))).rfai_encode(rfai_out, rfai_case, {k});",
        _rust_inside,
    )
    source = re.sub(r"(?<![\w:])((?:debug_)?assert(?:_eq|_ne)?!)", r"::core::\1", split.source)
    return SplitCase(source, split.checks, split.inside)
