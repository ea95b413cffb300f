"""Plain data across the sandbox's walls: one encoding, tagged by exact type, for every harness.

A program's values reach rfai (and the Python judge, see `_pyharness.py`) only in this form:
numbers, strings, bytes, None, bools, lists, tuples, dicts, sets, and `Variant` for an enum of a
compiled language (Rust's Some/None/Ok/Err). `encode` refuses anything else (a subclass of
`int`, an object with its own `__eq__`), and `decode_value` builds only these types, so no code
of the program's runs where values are compared.

Stdlib only (json-level imports): the sandbox's zygote loads this file by path, and every
process it forks pays for what it imports.
"""

MAX_DEPTH = 64  # nesting of one value
MAX_ITEMS = 100_000  # items in one value


class Unencodable(Exception):
    pass


class Undecodable(ValueError):
    pass


class Variant:
    """An enum value of a compiled language: Rust's Some(x), None, Ok(x), Err(e)."""

    __slots__ = ("name", "fields")

    def __init__(self, name: str, fields: tuple = ()) -> None:
        self.name, self.fields = name, fields

    def __eq__(self, other) -> bool:
        return type(other) is Variant and (self.name, self.fields) == (other.name, other.fields)

    def __hash__(self) -> int:
        return hash((self.name, self.fields))

    def __repr__(self) -> str:
        return f"Variant({self.name!r}, {self.fields!r})"


def encode(value):
    """Plain data as JSON, tagged by exact type (the inverse of `decode_value`)."""
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


def decode_value(data):
    """The JSON a harness wrote -> plain Python data."""
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise Undecodable("not an encoded value")
    ((tag, body),) = data.items()
    try:
        if tag == "i":
            return int(body)
        if tag == "f":
            return float(body)
        if tag == "c":
            return complex(float(body[0]), float(body[1]))
        if tag == "y":
            return bytes.fromhex(body)
        if tag == "t":
            return tuple(decode_value(item) for item in body)
        if tag == "s":
            return {decode_value(item) for item in body}
        if tag == "z":
            return frozenset(decode_value(item) for item in body)
        if tag == "d":
            return {decode_value(key): decode_value(value) for key, value in body}
        if tag == "v":
            return Variant(str(body[0]), tuple(decode_value(item) for item in body[1:]))
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        raise Undecodable(f"malformed {tag!r} value") from exc
    raise Undecodable(f"{tag!r} is not plain data ({str(body)[:40]})")
