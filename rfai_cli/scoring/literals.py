"""Expected values of C++ and Rust tests, read on the host so that they never enter the box.

`cpp_literal("std::vector<std::string>{\"a\", \"\"}")` -> `["a", ""]`; `rust_literal("Some(vec![1, 2])")`
-> `Variant("Some", ([1, 2],))`. Only literal data is understood (numbers, bools, chars,
strings, the standard containers, pairs/tuples, optionals, Rust's Some/None/Ok/Err); anything
else raises `NotLiteral`, and that assert stays inside the box as a weaker, in-box verdict.
The value shapes match what the language harnesses encode (see `values.decode_value`).
"""

from __future__ import annotations

import re
from typing import Any

from .values import Variant

MAX_ITEMS = 10_000


class NotLiteral(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:0[xX][0-9a-fA-F']+|0[bB][01']+|(?:\d[\d'_]*)?\.?\d[\d'_]*(?:[eE][+-]?\d+)?)[A-Za-z0-9_]*)
  | (?P<string>(?:u8|u|U|L|b)?"(?:[^"\\\n]|\\.)*")
  | (?P<char>(?:u8|u|U|L|b)?'(?:[^'\\\n]|\\.){1,10}')
  | (?P<name>[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*!?)
  | (?P<punct>::|[()\[\]{}<>,&\-;.!])
""",
    re.X,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "?": "?",
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise NotLiteral(f"unexpected {text[position]!r}")
        position = match.end()
        if match.lastgroup != "space":
            out.append((match.lastgroup, match.group()))
    return out


def _unquote(token: str) -> str:
    body = token[token.index(token[-1]) + 1 : -1]
    out, i = [], 0
    while i < len(body):
        if body[i] != "\\":
            out.append(body[i])
            i += 1
            continue
        code = body[i + 1]
        if code == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
            if not digits:
                raise NotLiteral("bad escape")
            out.append(chr(int(digits.group(), 16)))
            i += 2 + len(digits.group())
        elif code == "u" and body[i + 2 : i + 3] == "{":  # rust \u{...}
            end = body.index("}", i)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        elif code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        else:
            raise NotLiteral("unknown escape")
    return "".join(out)


def _number(token: str) -> int | float:
    text = token.replace("'", "").replace("_", "")
    if text.lower().startswith(("0x", "0b")):
        digits = re.match(r"0[xXbB][0-9a-fA-F]+", text)
        base = 16 if text[1] in "xX" else 2
        if not digits or re.fullmatch(r"(?:[uUlLzZ]|[iu](?:8|16|32|64|128|size))*", text[digits.end() :]) is None:
            raise NotLiteral(token)
        return int(digits.group()[2:], base)
    match = re.match(r"\d*\.?\d+(?:[eE][+-]?\d+)?|\d+\.", text)
    if not match:
        raise NotLiteral(token)
    number, suffix = match.group(), text[match.end() :]
    is_float = any(c in number for c in ".eE") or suffix.lower() in ("f", "f32", "f64")
    if suffix and not re.fullmatch(r"[uUlLzZ]*|[fF]|[lL]|[iu](?:8|16|32|64|128|size)|f32|f64", suffix):
        raise NotLiteral(token)
    return float(number) if is_float else int(number)


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.at = 0
        self.items = 0

    def peek(self, offset: int = 0) -> str:
        index = self.at + offset
        return self.tokens[index][1] if index < len(self.tokens) else ""

    def kind(self) -> str:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if not token or (expected is not None and token != expected):
            raise NotLiteral(f"expected {expected or 'more'}")
        self.at += 1
        return token

    def done(self) -> bool:
        return self.at >= len(self.tokens)

    def count(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise NotLiteral("too large")

    def sequence(self, close: str, item) -> list:
        out = []
        while self.peek() != close:
            out.append(item())
            self.count()
            if self.peek() == ",":
                self.take(",")
            elif self.peek() != close:
                raise NotLiteral("expected , or " + close)
        self.take(close)
        return out

    def scalar(self) -> Any:
        """A number (with its sign), bool, char or string; None when the next token is none of these."""
        negative = False
        if self.peek() == "-" and self.tokens[self.at + 1 : self.at + 2] and self.tokens[self.at + 1][0] == "number":
            self.take("-")
            negative = True
        kind, token = self.kind(), self.peek()
        if kind == "number":
            self.take()
            value = _number(token)
            return -value if negative else value
        if kind in ("string", "char"):
            self.take()
            text = _unquote(token)
            while self.kind() == "string":  # adjacent literals concatenate
                text += _unquote(self.take())
            return text
        if token in ("true", "false"):
            self.take()
            return token == "true"
        return None


# --- C++ ----------------------------------------------------------------------------------------

_CPP_LIST = {"std::vector", "std::array", "std::deque", "std::list", "std::initializer_list"}
_CPP_SET = {"std::set", "std::unordered_set", "std::multiset", "std::unordered_multiset"}
_CPP_MAP = {"std::map", "std::unordered_map", "std::multimap", "std::unordered_multimap"}
_CPP_TUPLE = {"std::pair", "std::tuple"}
_CPP_SCALARS = {
    "int",
    "long",
    "short",
    "unsigned",
    "signed",
    "char",
    "bool",
    "double",
    "float",
    "size_t",
    "std::size_t",
    "int64_t",
    "std::int64_t",
    "int32_t",
    "std::int32_t",
    "uint64_t",
    "std::uint64_t",
    "uint32_t",
    "std::uint32_t",
    "long long",
    "unsigned long",
    "unsigned long long",
    "unsigned int",
}


class _CppParser(_Parser):
    def type(self) -> tuple[str, list]:
        """A type name with its template arguments: ("std::vector", [("int", [])])."""
        words = [self.take()]
        while (
            self.kind() == "name" and words[-1] in ("long", "unsigned", "signed", "short") and not self.peek() == "std"
        ):
            words.append(self.take())
        name = " ".join(words)
        arguments = []
        if self.peek() == "<":
            self.take("<")
            while self.peek() != ">":
                if self.kind() == "number":
                    arguments.append(("#" + self.take(), []))
                else:
                    arguments.append(self.type())
                if self.peek() == ",":
                    self.take(",")
            self.take(">")
        return name, arguments

    def value(self, shape: tuple[str, list] | None = None) -> Any:
        scalar = self.scalar()
        if scalar is not None:
            return scalar
        token = self.peek()
        if token == "{":
            self.take("{")
            return self.braced(shape)
        if token in ("std::nullopt", "nullptr"):
            self.take()
            return None
        if token in ("std::make_pair", "std::make_tuple"):
            self.take()
            self.take("(")
            return tuple(self.sequence(")", self.value))
        if self.kind() == "name":
            shape = self.type()
            if self.peek() in ("{", "("):
                close = "}" if self.take() == "{" else ")"
                if (
                    shape[0] in ("std::string", "std::string_view")
                    or shape[0] in _CPP_SCALARS
                    or shape[0] == "std::optional"
                ):
                    items = self.sequence(close, lambda: self.value(shape[1][0] if shape[1] else None))
                    if shape[0] == "std::optional":
                        return items[0] if items else None
                    if len(items) != 1:
                        raise NotLiteral("expected one value")
                    return items[0] if shape[0] not in _CPP_SCALARS else _cast(shape[0], items[0])
                if close == ")":
                    if self.peek() != ")":
                        raise NotLiteral("constructor arguments")
                    self.take(")")
                    return self.empty(shape)
                return self.braced(shape)
        raise NotLiteral(f"not a literal: {token!r}")

    def empty(self, shape: tuple[str, list]) -> Any:
        return self.build(shape, [])

    def braced(self, shape: tuple[str, list] | None) -> Any:
        name, arguments = shape or ("", [])
        if name in _CPP_MAP:
            entries = self.sequence("}", lambda: self.pair(arguments))
            return dict(entries)
        element = arguments[0] if arguments and name not in _CPP_TUPLE else None
        if name in _CPP_TUPLE:
            items, position = [], 0

            def next_item():
                nonlocal position
                item = self.value(arguments[position] if position < len(arguments) else None)
                position += 1
                return item

            items = self.sequence("}", next_item)
            return tuple(items)
        return self.build(shape or ("std::vector", []), self.sequence("}", lambda: self.value(element)))

    def pair(self, arguments: list) -> tuple:
        self.take("{")
        key = self.value(arguments[0] if arguments else None)
        self.take(",")
        value = self.value(arguments[1] if len(arguments) > 1 else None)
        self.take("}")
        return key, value

    @staticmethod
    def build(shape: tuple[str, list], items: list) -> Any:
        name = shape[0]
        if name in _CPP_SET:
            return set(items)
        if name in _CPP_MAP:
            return dict(items)
        if name in _CPP_TUPLE:
            return tuple(items)
        if name in ("std::string", "std::string_view"):
            return ""
        if name in _CPP_LIST or name == "":
            return list(items)
        raise NotLiteral(f"unknown type {name}")


def _cast(name: str, value: Any) -> Any:
    if name in ("double", "float"):
        return float(value)
    if name == "bool":
        return bool(value)
    return value


def cpp_literal(text: str) -> Any:
    parser = _CppParser(text)
    value = parser.value()
    if not parser.done():
        raise NotLiteral("more than one value")
    return value


# --- Rust ---------------------------------------------------------------------------------------

_RUST_EMPTY = {
    "Vec::new": [],
    "String::new": "",
    "HashMap::new": {},
    "BTreeMap::new": {},
    "HashSet::new": set(),
    "BTreeSet::new": set(),
    "VecDeque::new": [],
}
_RUST_CONVERSIONS = {"to_string", "to_owned", "into", "clone", "to_vec"}


class _RustParser(_Parser):
    def value(self) -> Any:
        while self.peek() == "&":  # a borrow compares like the value
            self.take("&")
        value = self.primary()
        while self.peek() == "." and self.peek(1) in _RUST_CONVERSIONS and self.peek(2) == "(":
            self.at += 3
            self.take(")")
        return value

    def primary(self) -> Any:
        scalar = self.scalar()
        if scalar is not None:
            return scalar
        token = self.take()
        if token == "(":
            items = self.sequence(")", self.value)
            return tuple(
                items
            )  # `(x)` without a comma is not a tuple in Rust, but nor is it a literal worth telling apart
        if token == "[":
            return self.array("]")
        if token == "vec!":
            opening = self.take()
            return self.array({"[": "]", "(": ")", "{": "}"}.get(opening, "]"))
        if token in ("Some", "Ok", "Err"):
            self.take("(")
            inner = self.value()
            self.take(")")
            return Variant(token, (inner,))
        if token == "None":
            return Variant("None")
        if token in ("String::from", "std::string::String::from"):
            self.take("(")
            value = self.value()
            self.take(")")
            return value
        name = token.split("::")
        base = "::".join(part for part in name if part not in ("std", "collections", "vec", "string"))
        if self.peek() == "::" and self.peek(1) == "<":  # turbofish: Vec::<T>::new()
            self.take("::")
            depth = 0
            while True:
                part = self.take()
                depth += part == "<"
                depth -= part == ">"
                if depth == 0:
                    break
            self.take("::")
            base = base + "::" + self.take()
        if base in _RUST_EMPTY and self.peek() == "(":
            self.take("(")
            self.take(")")
            return _fresh(_RUST_EMPTY[base])
        raise NotLiteral(f"not a literal: {token!r}")

    def array(self, close: str) -> list:
        items = []
        while self.peek() != close:
            items.append(self.value())
            self.count()
            if self.peek() == ";":  # [x; n]
                self.take(";")
                repeat = self.scalar()
                if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= MAX_ITEMS:
                    raise NotLiteral("repeat count")
                self.take(close)
                return items * repeat
            if self.peek() == ",":
                self.take(",")
            elif self.peek() != close:
                raise NotLiteral("expected , or " + close)
        self.take(close)
        return items


def _fresh(value: Any) -> Any:
    return type(value)() if isinstance(value, (list, dict, set)) else value


def rust_literal(text: str) -> Any:
    parser = _RustParser(text)
    value = parser.value()
    if not parser.done():
        raise NotLiteral("more than one value")
    return value
