"""Data parallelism on MLX's own engine (`mx.distributed`): one code path for one process or many.

`rfai train` on N ranks (launched by `rfai train --nproc N`, or `mlx.launch` across machines)
splits every batch of prompts into whole groups per rank, samples and scores them locally,
sums the gradients once per optimizer step, and has rank 0 write everything. In a group of
one, every method here returns its input: no collective runs, nothing changes.

The rules that keep ranks in step (docs/distributed.md): every rank makes the same collective
calls in the same order; every decision (skip a non-finite step, stop on Ctrl-C, stop at
max_steps) is taken from values that are identical on every rank after a collective; a lost
peer turns into a one-line error instead of a hang.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import RfaiError

BACKEND_ENV = "RFAI_DISTRIBUTED_BACKEND"  # the backend the launcher set up for the ranks

# A rank that gave up waiting for another exits with this status: the launcher then names the
# ranks still running as the ones that did not arrive, and ends them.
RANK_TIMEOUT_EXIT = 75


class Deadline:
    """Stops this process when it waits at one collective for more than `seconds`: a peer that
    hangs (stopped, stuck in a call that never returns, cut off) would otherwise hold every other
    rank in MLX's collective, spinning, forever. A watchdog thread, so a wait blocked in C++ ends too."""

    def __init__(self, seconds: float, rank: int):
        self.seconds, self.rank = seconds, rank
        self.since: float | None = None  # when the current wait began; None outside collectives
        threading.Thread(target=self._watch, name="rfai-rank-deadline", daemon=True).start()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.since = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.seconds / 4))
            since = self.since
            if since is not None and time.monotonic() - since > self.seconds:
                sys.stderr.write(
                    f"error: rank {self.rank} waited {self.seconds:g} s (training.rank_timeout) at a collective for a "
                    "rank that did not arrive; stopping (continue with rfai train --resume)\n"
                )
                sys.stderr.flush()
                os._exit(RANK_TIMEOUT_EXIT)


@dataclass
class World:
    group: Any  # mx.distributed.Group, None for a single process
    rank: int = 0
    size: int = 1
    deadline: Deadline | None = field(default=None, repr=False)

    def _waiting(self):
        return self.deadline.waiting() if self.deadline is not None else _nothing()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tree):
        """The element-wise sum over ranks of a tree of arrays (the tree itself on one rank).

        The leaves go in the order of their sorted paths, so two ranks whose trees were built in
        different orders (a loaded optimizer state, a fresh one) still pair the same arrays."""
        if self.size == 1:
            return tree
        import mlx.core as mx
        from mlx.utils import tree_flatten, tree_unflatten

        with self._waiting():
            if isinstance(tree, mx.array):
                return _evaluated(mx.distributed.all_sum(tree, group=self.group))
            leaves = sorted(tree_flatten(tree), key=lambda item: item[0])
            summed = [(path, mx.distributed.all_sum(value, group=self.group)) for path, value in leaves]
            _evaluated([value for _, value in summed])
        return tree_unflatten(summed)

    def sum_floats(self, *values: float) -> list[float]:
        """Python numbers summed over ranks, in one collective."""
        if self.size == 1:
            return list(values)
        import mlx.core as mx

        return self.all_sum(mx.array(values, dtype=mx.float32)).tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a decision every rank takes together)."""
        return bool(self.sum_floats(float(flag))[0]) if self.size > 1 else flag

    def broadcast(self, tree):
        """Rank 0's values of a tree of arrays, on every rank (the trees must have the same paths)."""
        if self.size == 1:
            return tree
        import mlx.core as mx
        from mlx.utils import tree_map

        return self.all_sum(tree_map(lambda x: x if self.is_main else mx.zeros_like(x), tree))

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's JSON-serialisable value, on every rank."""
        if self.size == 1:
            return value
        gathered = self.gather_bytes(json.dumps(value).encode() if self.is_main else b"", to_all=True)
        return json.loads(gathered[0])

    def gather_bytes(self, data: bytes, *, to_all: bool = False) -> list[bytes] | None:
        """Every rank's bytes, in rank order, on rank 0 (on every rank with `to_all`); None elsewhere."""
        if self.size == 1:
            return [data]
        import mlx.core as mx
        import numpy as np

        lengths = [int(n) for n in self.all_sum(_one_hot(len(data), self.rank, self.size)).tolist()]
        width = max(max(lengths), 1)
        padded = np.zeros(width, dtype=np.uint8)
        padded[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        with self._waiting():
            rows = np.array(_evaluated(mx.distributed.all_gather(mx.array(padded), group=self.group)))
        rows = rows.reshape(self.size, width)
        if not (to_all or self.is_main):
            return None
        return [rows[r, : lengths[r]].tobytes() for r in range(self.size)]

    def gather_rows(self, rows: list[dict]) -> list[dict] | None:
        """Every rank's dataset rows, rank 0's first, on rank 0; None elsewhere."""
        if self.size == 1:
            return rows
        gathered = self.gather_bytes(json.dumps(rows).encode())
        return None if gathered is None else [row for part in gathered for row in json.loads(part)]


SINGLE = World(None)  # one process: every collective returns its input


def init_world(rank_timeout: float | None = None) -> World:
    """The group this process belongs to: the launched ranks, or a single process. On several
    ranks, a wait at a collective longer than `rank_timeout` seconds stops the process."""
    import mlx.core as mx

    backend = os.environ.get(BACKEND_ENV)  # set by --nproc and --hostfile; mlx.launch's ranks take any
    try:
        group = mx.distributed.init(strict=backend is not None, backend=backend or "any")
    except RuntimeError as exc:
        raise RfaiError(f"cannot start MLX's {backend} backend here: {str(exc).splitlines()[0]}") from None
    if group.size() == 1:
        return World(None)
    deadline = Deadline(rank_timeout, group.rank()) if rank_timeout else None
    return World(group, group.rank(), group.size(), deadline)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def lost_peer(exc: BaseException) -> RfaiError | None:
    """The one-line error for a collective whose peer died (MLX's ring backend raises RuntimeError)."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("[ring]" in text or "[mpi]" in text or "[nccl]" in text):
        return RfaiError(f"lost contact with another rank ({text}); it died or was killed, see its own output")
    return None


def _one_hot(value: int, rank: int, size: int):
    import mlx.core as mx

    return mx.array([value if r == rank else 0 for r in range(size)], dtype=mx.int32)


def _evaluated(tree):
    import mlx.core as mx

    mx.eval(tree)
    return tree
