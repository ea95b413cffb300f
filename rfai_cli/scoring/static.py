"""Static metrics, 0..1 each: code quality, documentation, and an efficiency estimate.

Python is analysed on its AST (nothing is executed). C++ and Rust get the compiler's warning
count for quality (counted by `programs.py`) and text heuristics for documentation and loop
nesting. Every deduction is listed in `notes` so a score can be explained.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 10
WARNING_PENALTY = 0.1
# Deductions from a perfect 1.0 for python code quality.
PENALTIES = {"undefined": 0.2, "bare_except": 0.15, "long_function": 0.1, "complex_function": 0.1, "star_import": 0.1}
_MODULE_NAMES = {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__",
                 "__annotations__", "__debug__"}


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
    if language == "python":
        return analyze_python(code)
    return analyze_braces(code, language)


# --- python -------------------------------------------------------------------------------

def analyze_python(code: str) -> StaticReport:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return StaticReport(False, 0.0, 0.0, 0.0, [f"does not parse: {type(exc).__name__}: {exc}"[:200]])
    notes: list[str] = []
    quality = 1.0
    for name in sorted(undefined_names(tree)):
        quality -= PENALTIES["undefined"]
        notes.append(f"undefined name '{name}'")
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
    implemented = frozenset(node.name for node in tree.body
                            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not is_stub(node))
    return StaticReport(True, clamp(quality), documentation, efficiency, notes, implemented)


def is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """A definition that does nothing: its body is only docstrings, `pass`, `...`, a bare or
    `None` return, or `raise NotImplementedError`."""
    def empty(statement: ast.stmt) -> bool:
        if isinstance(statement, ast.Pass):
            return True
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            return True  # a docstring or a bare `...`
        if isinstance(statement, ast.Return):
            return statement.value is None or (isinstance(statement.value, ast.Constant) and statement.value.value is None)
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
    branches = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.Assert,
                ast.comprehension, ast.match_case)
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
    public = [node for node in ast.walk(tree)
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_")]
    if not public:
        has_any = ast.get_docstring(tree) is not None or any(line.strip().startswith("#") for line in lines)
        return 1.0 if has_any else 0.0
    documented = sum(1 for node in public if ast.get_docstring(node) is not None or _comment_near(node, lines))
    return documented / len(public)


def _comment_near(node: ast.AST, lines: list[str]) -> bool:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    above = lines[first - 2].strip() if first >= 2 else ""
    body_start = node.body[0].lineno if node.body else node.lineno
    inside = [line.strip() for line in lines[node.lineno:body_start]]
    return above.startswith("#") or any(line.startswith("#") for line in inside)


def python_loop_depth(tree: ast.AST) -> int:
    loops = (ast.For, ast.AsyncFor, ast.While, ast.comprehension)

    def depth(node: ast.AST) -> int:
        below = max((depth(child) for child in ast.iter_child_nodes(node)), default=0)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return below + len(node.generators)
        return below + (1 if isinstance(node, loops) and not isinstance(node, ast.comprehension) else 0)

    return depth(tree)


# --- c++ / rust (and anything with braces) ------------------------------------------------

_FUNCTION = {
    "cpp": re.compile(r"^[ \t]*(?:template\s*<[^>]*>\s*)?(?:[\w:<>,*&~\[\]]+[ \t\n*&]+)+(?P<name>~?\w+)\s*\([^;{}()]*(?:\([^)]*\)[^;{}()]*)*\)\s*(?:const\s*)?(?:noexcept\s*)?(?:override\s*)?(?:->\s*[\w:<>]+\s*)?\{", re.M),
    "rust": re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+|async\s+|unsafe\s+)*fn\s+(?P<name>\w+)", re.M),
}
_NOT_FUNCTIONS = {"if", "for", "while", "switch", "catch", "return", "else", "do", "main"}
_COMMENT = re.compile(r"^\s*(//|/\*|\*|#\[doc)")
_LOOP_TOKENS = re.compile(r"\b(for|while|loop)\b|[{}]")


def analyze_braces(code: str, language: str) -> StaticReport:
    return StaticReport(True, None, brace_documentation(code, language), loop_depth_efficiency(brace_loop_depth(code)),
                        implemented=frozenset(brace_function_names(code, language)))


def brace_function_names(code: str, language: str) -> list[str]:
    """Functions defined in C++/Rust source (main and keywords excepted), found by the same pattern
    as the documentation check."""
    pattern = _FUNCTION.get(language, _FUNCTION["cpp"])
    return [match["name"] for match in pattern.finditer(code) if match["name"] not in _NOT_FUNCTIONS]


def brace_documentation(code: str, language: str) -> float:
    """Share of functions (main and tests excluded) preceded by a comment or doc comment."""
    pattern = _FUNCTION.get(language, _FUNCTION["cpp"])
    lines = code.splitlines()
    functions = []
    for match in pattern.finditer(code):
        if match["name"] in _NOT_FUNCTIONS:
            continue
        line = code.count("\n", 0, match.start("name"))
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
    code = re.sub(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"", "", code, flags=re.S)
    stack: list[bool] = []
    pending = False
    deepest = 0
    for match in _LOOP_TOKENS.finditer(code):
        token = match.group()
        if token == "{":
            stack.append(pending)
            pending = False
            deepest = max(deepest, sum(stack))
        elif token == "}":
            if stack:
                stack.pop()
        else:
            pending = True
    return deepest
