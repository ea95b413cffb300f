"""Static metrics, 0..1 each: code quality, documentation, and an efficiency estimate.

Python is analysed on its AST (nothing is executed). C++ and Rust get the compiler's warning
count for quality (counted by `programs.py`) and text heuristics for documentation and loop
nesting. Every deduction is listed in `notes` so a score can be explained.
"""

from __future__ import annotations

import ast
import bisect
import builtins
import re
import threading
import warnings
from dataclasses import dataclass, field

MAX_FUNCTION_LINES = 60
MAX_ANALYZED_CHARS = 1_000_000  # longer is not a program a model wrote for a task
MAX_COMPLEXITY = 10
WARNING_PENALTY = 0.1
# Deductions from a perfect 1.0 for python code quality.
PENALTIES = {
    "undefined": 0.2,
    "bare_except": 0.15,
    "long_function": 0.1,
    "complex_function": 0.1,
    "star_import": 0.1,
    "dynamic_code": 0.5,
}
# Code built at run time, which static analysis cannot see: these names called or looked up
# (as a name or an attribute), the namespaces that reach them by a computed name (`builtins`,
# `globals()`: `getattr(builtins, "exec")`), the modules that load code, and one of these
# dunders named in a string. `re.compile` is a pattern, not code: `compile` counts only as a
# bare name; "eval" as a dictionary key is a word.
_DYNAMIC_NAMES = {
    "exec",
    "eval",
    "compile",
    "__import__",
    "import_module",
    "FunctionType",
    "CodeType",
    "__code__",
    "__globals__",
    "__subclasses__",
    "builtins",
    "__builtins__",
    "globals",
    "locals",
    "vars",
}
_DYNAMIC_ATTRIBUTES = _DYNAMIC_NAMES - {"compile"}
_DYNAMIC_STRINGS = {"__import__", "__builtins__", "__code__", "__globals__", "__subclasses__"}
_DYNAMIC_MODULES = {"builtins", "importlib"}
_CODE_LOADERS = {"marshal", "pickle", "dill", "cloudpickle"}
_MODULE_NAMES = {
    "__name__",
    "__file__",
    "__doc__",
    "__builtins__",
    "__spec__",
    "__loader__",
    "__package__",
    "__annotations__",
    "__debug__",
}


@dataclass(frozen=True)
class StaticReport:
    parses: bool  # python: the code parses (other languages: not known statically, True)
    quality: float | None  # None where the compiler decides (c++/rust)
    documentation: float
    efficiency: float
    notes: list[str] = field(default_factory=list)
    # Top-level functions and classes whose body does something (not only pass/.../a docstring/
    # `raise NotImplementedError`); for brace languages every function found, main excepted.
    implemented: frozenset[str] = frozenset()


def clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def loop_depth_efficiency(depth: int) -> float:
    """Static efficiency estimate from the deepest loop nesting: 1 loop is fine, 4 is not."""
    return {0: 1.0, 1: 1.0, 2: 0.75, 3: 0.5}.get(depth, 0.25)


def analyze(code: str, language: str) -> StaticReport:
    """Never raises: this runs in rfai's own process on untrusted text, so every pattern is linear,
    no walk recurses on the program's depth, the size is bounded, and any failure left becomes
    this program's note (scored 0) instead of the run's crash."""
    if len(code) > MAX_ANALYZED_CHARS:
        return StaticReport(
            language != "python", 0.0, 0.0, 0.0, [f"too long for static analysis ({len(code)} characters)"]
        )
    try:
        return analyze_python(code) if language == "python" else analyze_braces(code, language)
    except (RecursionError, MemoryError, ValueError, SystemError) as exc:
        return StaticReport(language != "python", 0.0, 0.0, 0.0, [f"static analysis failed: {type(exc).__name__}"])


# --- python -------------------------------------------------------------------------------


_PARSE_LOCK = threading.Lock()


def parse_python(source: str) -> ast.Module:
    """`ast.parse`, one call at a time: CPython 3.11's AST constructor keeps its recursion depth in
    interpreter-wide state, and parses on two scorer threads at once can fail with
    "SystemError: AST constructor recursion depth mismatch". The warnings an answer's source
    provokes (invalid escape sequences) are the answer's business, not lines on rfai's stderr."""
    with _PARSE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(source)


def analyze_python(code: str) -> StaticReport:
    try:
        tree = parse_python(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError) as exc:
        return StaticReport(False, 0.0, 0.0, 0.0, [f"does not parse: {type(exc).__name__}: {exc}"[:200]])
    notes: list[str] = []
    quality = 1.0
    for name in sorted(undefined_names(tree)):
        quality -= PENALTIES["undefined"]
        notes.append(f"undefined name {name[:60]!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            quality -= PENALTIES["bare_except"]
            notes.append(f"bare except at line {node.lineno}")
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            quality -= PENALTIES["star_import"]
            notes.append(f"star import at line {node.lineno}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                quality -= PENALTIES["long_function"]
                notes.append(f"function '{node.name}' is {length} lines long")
            complexity = cyclomatic_complexity(node)
            if complexity > MAX_COMPLEXITY:
                quality -= PENALTIES["complex_function"]
                notes.append(f"function '{node.name}' has complexity {complexity}")
    documentation = python_documentation(tree, code)
    efficiency = loop_depth_efficiency(python_loop_depth(tree))
    hidden = dynamic_code(tree)
    if hidden:  # scored as the worst it could be: what runs is not what was analysed
        quality -= PENALTIES["dynamic_code"] * len(hidden)
        documentation, efficiency = 0.0, loop_depth_efficiency(4)
        notes += [f"code built at run time ({what}, line {line}): scored as unseen" for line, what in hidden[:3]]
    implemented = frozenset(
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not is_stub(node)
    )
    return StaticReport(True, clamp(quality), documentation, efficiency, notes, implemented)


def dynamic_code(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each place the program builds code at run time."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _DYNAMIC_NAMES:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and (
            node.attr in _DYNAMIC_ATTRIBUTES
            or (node.attr == "loads" and isinstance(node.value, ast.Name) and node.value.id in _CODE_LOADERS)
        ):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in _DYNAMIC_STRINGS:
            found.append((node.lineno, repr(node.value)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            found += [(node.lineno, f"import of {m}") for m in modules if m.split(".")[0] in _DYNAMIC_MODULES][:1]
    return found


def is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """A definition that does nothing: its body is only docstrings, `pass`, `...`, a bare or
    `None` return, or `raise NotImplementedError`."""

    def empty(statement: ast.stmt) -> bool:
        if isinstance(statement, ast.Pass):
            return True
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            return True  # a docstring or a bare `...`
        if isinstance(statement, ast.Return):
            return statement.value is None or (
                isinstance(statement.value, ast.Constant) and statement.value.value is None
            )
        if isinstance(statement, ast.Raise) and statement.exc is not None:
            raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
        return False

    if isinstance(node, ast.ClassDef):
        methods = [s for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        others = [s for s in node.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return all(empty(s) for s in others) and all(is_stub(m) for m in methods)
    return all(empty(statement) for statement in node.body)


def undefined_names(tree: ast.AST) -> set[str]:
    """Names read somewhere but bound nowhere in the module (scope-insensitive, so no false alarms
    from closures; it catches typos and missing imports)."""
    bound = set(dir(builtins)) | _MODULE_NAMES
    loaded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return set()  # anything may come from a star import
    return loaded - bound


def cyclomatic_complexity(function: ast.AST) -> int:
    branches = (
        ast.If,
        ast.For,
        ast.AsyncFor,
        ast.While,
        ast.IfExp,
        ast.ExceptHandler,
        ast.Assert,
        ast.comprehension,
        ast.match_case,
    )
    complexity = 1
    for node in ast.walk(function):
        if isinstance(node, branches):
            complexity += 1
        elif isinstance(node, ast.BoolOp):
            complexity += len(node.values) - 1
    return complexity


def python_documentation(tree: ast.Module, code: str) -> float:
    """Share of public functions and classes with a docstring or a comment just above/inside."""
    lines = code.splitlines()
    public = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_")
    ]
    if not public:
        has_any = ast.get_docstring(tree) is not None or any(line.strip().startswith("#") for line in lines)
        return 1.0 if has_any else 0.0
    documented = sum(1 for node in public if ast.get_docstring(node) is not None or _comment_near(node, lines))
    return documented / len(public)


def _comment_near(node: ast.AST, lines: list[str]) -> bool:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    above = lines[first - 2].strip() if first >= 2 else ""
    body_start = node.body[0].lineno if node.body else node.lineno
    inside = [line.strip() for line in lines[node.lineno : body_start]]
    return above.startswith("#") or any(line.startswith("#") for line in inside)


def python_loop_depth(tree: ast.AST) -> int:
    """Deepest loop nesting (comprehension generators count), walked without recursion: untrusted
    code can nest thousands of levels (an `elif` chain, a long sum)."""
    loops = (ast.For, ast.AsyncFor, ast.While)
    comprehensions = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    deepest = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, loops):
            depth += 1
        elif isinstance(node, comprehensions):
            depth += len(node.generators)
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return deepest


# --- c++ / rust (and anything with braces) ------------------------------------------------

# Every pattern here runs on untrusted text: each is linear (no nested or overlapping repeats).
_RUST_FUNCTION = re.compile(
    r"^[ \t]*(?:pub(?:\([^)\n]{0,40}\))?[ \t]+)?(?:(?:const|async|unsafe)[ \t]+)*fn[ \t]+(?P<name>\w+)", re.M
)
_CALL_LIKE = re.compile(r"(?<![\w~])(?P<name>~?[A-Za-z_]\w*)[ \t\n]*\(")
_AFTER_PARAMETERS = re.compile(
    r"[ \t\n]*(?:(?:const|noexcept|override|final)\b[ \t\n]*)*(?:->[ \t\n]*[\w:<>, ]{1,80}?[ \t\n]*)?\{"
)
_NOT_FUNCTIONS = {
    "if",
    "for",
    "while",
    "switch",
    "catch",
    "return",
    "else",
    "do",
    "main",
    "sizeof",
    "decltype",
    "alignof",
    "static_assert",
    "defined",
}
_COMMENT = re.compile(r"^\s*(//|/\*|\*|#\[doc)")
_LOOP_TOKENS = re.compile(r"\b(for|while|loop)\b|[{}]")


def blank_comments_and_strings(code: str) -> str:
    """`code` with comments and string/char literals replaced by spaces (newlines kept, so
    offsets and line numbers still match): one left-to-right pass, linear in the length."""
    out = list(code)
    i, n = 0, len(code)
    while i < n:
        two = code[i : i + 2]
        if two == "//":
            end = code.find("\n", i)
            end = n if end < 0 else end
        elif two == "/*":
            end = code.find("*/", i + 2)
            end = n if end < 0 else end + 2
        elif code[i] in "\"'":
            quote, end = code[i], i + 1
            while end < n and code[end] != quote and code[end] != "\n":
                end += 2 if code[end] == "\\" else 1
            end = min(n, end + 1)
        else:
            i += 1
            continue
        for j in range(i, end):
            if out[j] != "\n":
                out[j] = " "
        i = end
    return "".join(out)


def _closing_parens(code: str) -> dict[int, int]:
    """Offset of each `(` -> offset of its matching `)`, in one pass."""
    pairs, stack = {}, []
    for index, char in enumerate(code):
        if char == "(":
            stack.append(index)
        elif char == ")" and stack:
            pairs[stack.pop()] = index
    return pairs


def function_starts(code: str, language: str) -> list[tuple[str, int]]:
    """(name, offset of the name) of each function definition in C++/Rust source."""
    if language == "rust":
        return [(m["name"], m.start("name")) for m in _RUST_FUNCTION.finditer(code)]
    bare = blank_comments_and_strings(code)
    closing = _closing_parens(bare)
    found = []
    for match in _CALL_LIKE.finditer(bare):
        name, start = match["name"], match.start("name")
        end = closing.get(match.end() - 1)
        if name in _NOT_FUNCTIONS or end is None or not _AFTER_PARAMETERS.match(bare, end + 1):
            continue
        before = bare[max(0, start - 80) : start].rstrip(" \t\n*&")
        if (
            before.endswith(("::", ">"))
            or (before[-1:].isalnum() or before[-1:] == "_")
            and not before.endswith(("return", "new", "else", "throw"))
        ):
            found.append((name, start))  # a return type (or `Class::`) precedes it: a definition
    return found


def function_bodies(code: str, language: str) -> list[tuple[int, int]]:
    """(offset of `{`, offset of its `}`) of each outermost function body in C++/Rust source."""
    bare = blank_comments_and_strings(code)
    bodies: list[tuple[int, int]] = []
    for _, start in function_starts(code, language):
        opening = bare.find("{", start)
        if opening < 0 or ";" in bare[start:opening] or (bodies and opening < bodies[-1][1]):
            continue  # no body (a declaration), or inside a body already found
        depth = 0
        for index in range(opening, len(bare)):
            depth += {"{": 1, "}": -1}.get(bare[index], 0)
            if depth == 0:
                bodies.append((opening, index))
                break
    return bodies


def analyze_braces(code: str, language: str) -> StaticReport:
    return StaticReport(
        True,
        None,
        brace_documentation(code, language),
        loop_depth_efficiency(brace_loop_depth(code)),
        implemented=frozenset(brace_function_names(code, language)),
    )


def brace_function_names(code: str, language: str) -> list[str]:
    """Functions defined in C++/Rust source (main and keywords excepted)."""
    return [name for name, _ in function_starts(code, language) if name not in _NOT_FUNCTIONS]


def brace_documentation(code: str, language: str) -> float:
    """Share of functions (main and tests excluded) preceded by a comment or doc comment."""
    lines = code.splitlines()
    breaks = [match.start() for match in re.finditer("\n", code)]  # the line of an offset, by bisection
    functions = []
    for name, start in function_starts(code, language):
        if name in _NOT_FUNCTIONS:
            continue
        line = bisect.bisect_left(breaks, start)
        above = line - 1
        while above >= 0 and lines[above].strip().startswith("#["):  # skip Rust attributes
            above -= 1
        if above >= 0 and "#[test]" in "\n".join(lines[above:line]):
            continue
        functions.append(above >= 0 and bool(_COMMENT.match(lines[above])))
    if not functions:
        return 1.0 if any(_COMMENT.match(line) for line in lines) else 0.0
    return sum(functions) / len(functions)


def brace_loop_depth(code: str) -> int:
    stack: list[bool] = []  # per open brace: does it open a loop body
    pending = False
    loops = deepest = 0
    for match in _LOOP_TOKENS.finditer(blank_comments_and_strings(code)):
        token = match.group()
        if token == "{":
            stack.append(pending)
            loops += pending
            pending = False
            deepest = max(deepest, loops)
        elif token == "}":
            if stack:
                loops -= stack.pop()
        else:
            pending = True
    return deepest
