"""pyarrow's JSON reader on one block of JSONL, the one way rfai calls it."""

from __future__ import annotations

from typing import Any


def read_json_block(data: Any, **parse_options: Any):
    """A pyarrow Table of the JSONL in `data` (bytes or a buffer), parsed on the calling thread.

    pyarrow's thread pool aborts the whole process (`terminate called without an active
    exception`) when it cannot start a thread under an address-space limit, and at times when it
    is torn down at exit with a worker still alive. Blocks are a few MB, cheap to read alone.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    return pj.read_json(
        data if isinstance(data, pa.NativeFile) else pa.BufferReader(data),
        read_options=pj.ReadOptions(use_threads=False),
        parse_options=pj.ParseOptions(**parse_options) if parse_options else None,
    )
