"""Kept rows as mlx-lm fine-tuning data: `rfai filter --format mlx-lm` (best-of-n distillation).

Each row becomes one chat row, `{"messages": [system, user, assistant]}`, the format
`mlx_lm.lora --data` reads: the system and user turns are exactly what the student was asked
(the engine's system prompt for the row's language, the row's prompt) and the assistant turn is
the student's code in one fenced block, the shape the RL prompt asks for. So

    rfai filter datasets/train.jsonl --min-reward 1 --format mlx-lm -o sft/
    mlx_lm.lora --model ... --train --data sft/

fine-tunes on the best samples. `-o FILE` writes one file; `-o DIR/` (or an existing directory)
writes DIR/train.jsonl, valid.jsonl and test.jsonl from the rows' splits (mlx-lm's names for
train, validation, evaluation; a row without a split is train), each file replaced only once
complete.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import IO

from ..output import open_output

MLX_LM_SPLITS = {"train": "train", "validation": "valid", "evaluation": "test"}


def chat_row(row: dict) -> bytes:
    """One mlx-lm chat row for a dataset row that has `prompt` and `student_code`."""
    from ..engine.generation import system_prompt

    language = row.get("language") or "python"
    code = row["student_code"].strip("\n")
    messages = [
        {"role": "system", "content": system_prompt(language)},
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": f"```{language}\n{code}\n```"},
    ]
    return (json.dumps({"messages": messages}, ensure_ascii=False) + "\n").encode("utf-8")


class ChatRows:
    """A byte sink for `filter_rows`: each kept JSON line is written as its chat row to `stream`."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream

    def write(self, line: bytes) -> None:
        self.stream.write(chat_row(json.loads(line)))


class ChatDirectory:
    """A byte sink for `filter_rows` that sorts chat rows into DIR/{train,valid,test}.jsonl by each
    row's split (the input file's implied split first, as everywhere). Rows wait in temporary
    files; `close` puts each non-empty split file in place."""

    def __init__(self, directory: Path, default_split: str | None):
        self.directory, self.default_split = directory, default_split
        self._spools: dict[str, IO[bytes]] = {}

    def write(self, line: bytes) -> None:
        row = json.loads(line)
        name = MLX_LM_SPLITS.get(self.default_split or row.get("split") or "train", "train")
        if name not in self._spools:
            self._spools[name] = tempfile.TemporaryFile()
        self._spools[name].write(chat_row(row))

    def close(self) -> list[Path]:
        written = []
        for name, spool in sorted(self._spools.items()):
            spool.seek(0)
            path = self.directory / f"{name}.jsonl"
            with open_output(path, make_parents=True) as out:
                while block := spool.read(1 << 20):
                    out.write(block)
            spool.close()
            written.append(path)
        self._spools = {}
        return written
