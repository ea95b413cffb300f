"""Find and redact API keys, tokens and private keys in text and in dataset rows.

One small table of regexes, one per credential format whose shape is published and distinctive
(a fixed prefix plus a known alphabet and length). That keeps false positives rare in code
datasets, where generic "high-entropy string" detectors fire on hashes, base64 test data and
long identifiers. `filter --drop-secrets/--redact-secrets` and `upload` both use this module,
so what is checked before upload is exactly what the filter removes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

REDACTED = "[REDACTED:{kind}]"


@dataclass(frozen=True)
class SecretMatch:
    """One credential found in a string: its kind and the [start, end) span to remove."""

    kind: str
    start: int
    end: int


def _mixed(token: str) -> bool:
    """Random tokens mix at least two of lower case, upper case and digits; identifiers rarely do."""
    classes = (any(c.islower() for c in token), any(c.isupper() for c in token), any(c.isdigit() for c in token))
    return sum(classes) >= 2


def _always(token: str) -> bool:
    return True


# Neither a letter, a digit nor an underscore may touch the token, so `my_hf_...` style
# identifiers and substrings of longer tokens do not match.
_B = r"(?<![A-Za-z0-9_])"
_E = r"(?![A-Za-z0-9_])"

# kind -> (pattern, check on the matched token). The span reported is group "s" when the pattern
# has one (the AWS secret key is found through its label but only the value is removed).
_PATTERNS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "private_key": (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        # A key cut off before its END line is still removed, up to the end of the text.
        r"(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        _always,
    ),
    # sk-ant-api03-..., sk-ant-admin01-...
    "anthropic": (_B + r"sk-ant-[a-z]+\d\d-[A-Za-z0-9_-]{20,}", _always),
    # sk-proj-..., sk-svcacct-..., sk-admin-... and the older sk- + 48 alphanumerics.
    "openai": (_B + r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{32,}" + _E + ")", _mixed),
    # hf_ + 34 letters (user access tokens); a little slack on the length.
    "huggingface": (_B + r"hf_[A-Za-z0-9]{30,40}" + _E, _mixed),
    "aws_access_key_id": (_B + r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + _E, _always),
    "aws_secret_access_key": (
        r"(?:aws|AWS|Aws)_?(?:secret|Secret|SECRET)_?(?:(?:access|Access|ACCESS)_?)?(?:key|Key|KEY)"
        r"[\"']?\s*[:=]\s*[\"']?(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        _always,
    ),
    "github": (_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})" + _E, _mixed),
    "google_api_key": (_B + r"AIza[0-9A-Za-z_-]{35}" + _E, _always),
    "slack": (_B + r"xox[abprs]-[A-Za-z0-9-]{10,}" + _E, _always),
}

_COMBINED = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, (pattern, _) in _PATTERNS.items()))
KINDS = tuple(_PATTERNS)
# A literal that every match contains. Substring tests are ~30x cheaper than running the
# combined pattern, and almost no string in a dataset contains any of them.
_HINTS = (
    "hf_",
    "sk-",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "PRIVATE KEY",
    "ecret",
    "ECRET",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "AIza",
    "xox",
)


def find_secrets(text: str) -> list[SecretMatch]:
    """Every credential in `text`, left to right, non-overlapping."""
    if not any(hint in text for hint in _HINTS):
        return []
    found = []
    for match in _COMBINED.finditer(text):
        kind = match.lastgroup  # the outermost group, named after the kind
        start, end = match.span("s" if kind == "aws_secret_access_key" else kind)
        if _PATTERNS[kind][1](text[start:end]):
            found.append(SecretMatch(kind, start, end))
    return found


def redact(text: str) -> str:
    """`text` with each credential replaced by `[REDACTED:<kind>]`."""
    matches = find_secrets(text)
    if not matches:
        return text
    parts, cursor = [], 0
    for match in matches:
        parts.append(text[cursor : match.start])
        parts.append(REDACTED.format(kind=match.kind))
        cursor = match.end
    parts.append(text[cursor:])
    return "".join(parts)


def scan_value(value: Any, path: str = "") -> Iterator[tuple[str, SecretMatch]]:
    """(field path, match) for every credential in the strings of a JSON value, nested ones too.

    Paths read like `student_code`, `score_sources.judge`, `tests[2]`.
    """
    if isinstance(value, str):
        for match in find_secrets(value):
            yield path, match
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from scan_value(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from scan_value(item, f"{path}[{index}]")


def scan_rows(rows: Iterable[dict]) -> Iterator[tuple[int, str, SecretMatch]]:
    """(row index from 0, field path, match) for every credential in a stream of rows."""
    for index, row in enumerate(rows):
        for path, match in scan_value(row):
            yield index, path, match


def has_secret(value: Any) -> bool:
    return next(scan_value(value), None) is not None


def redact_value(value: Any) -> tuple[Any, int]:
    """A copy of a JSON value with every string redacted (key order kept), and how many credentials went."""
    if isinstance(value, str):
        count = len(find_secrets(value))
        return (redact(value) if count else value), count
    if isinstance(value, dict):
        total, out = 0, {}
        for key, item in value.items():
            out[key], count = redact_value(item)
            total += count
        return out, total
    if isinstance(value, list):
        total, items = 0, []
        for item in value:
            new, count = redact_value(item)
            items.append(new)
            total += count
        return items, total
    return value, 0
