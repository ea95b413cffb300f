"""A persistent on-disk cache of teacher answers, so a rerun costs no teacher calls.

One small JSON file per answer, named by the SHA-256 of (provider, model, endpoint, chat,
sampling). Writes go through `output.write_text` (a uniquely named temporary file renamed into
place), so concurrent writers (threads or processes) never leave a half-written entry: a reader
sees the old state or the new one. A file that cannot be read is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..output import write_text

SCHEMA = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rfai" / "teacher"


def cache_key(identity: dict[str, Any], chat: list[dict[str, str]], sampling: dict[str, Any]) -> str:
    blob = json.dumps(
        {"schema": SCHEMA, "identity": identity, "chat": chat, "sampling": sampling},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            text = entry["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return text if isinstance(text, str) else None

    def put(self, key: str, text: str, identity: dict[str, Any]) -> None:
        entry = {"provider": identity.get("provider"), "model": identity.get("model"), "text": text}
        write_text(self._path(key), json.dumps(entry, ensure_ascii=False), make_parents=True)
