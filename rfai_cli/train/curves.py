"""The training curves as one PNG: reward, test pass rate and KL by step, from `metrics.jsonl`.

matplotlib's object API (no pyplot, no global figure state, no display needed) draws it; the
bytes go through `output.write_bytes`, so a crash never leaves half an image.
"""

from __future__ import annotations

import io
from pathlib import Path

from ..output import write_bytes

PANELS = (("reward_mean", "mean reward"), ("pass_rate", "test pass rate"), ("kl", "KL to the reference"))


def write_curves(metrics: list[dict], path: Path) -> Path | None:
    """Draw the curves of `metrics` (one dict per step) into `path`; None when there is no step."""
    from matplotlib.figure import Figure

    if not metrics:
        return None
    figure = Figure(figsize=(12, 3.4), layout="constrained")
    for axes, (key, title) in zip(figure.subplots(1, len(PANELS)), PANELS):
        points = [(m["step"], m[key]) for m in metrics if isinstance(m.get(key), (int, float))]
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, marker="." if len(points) < 50 else None)
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes(path, buffer.getvalue(), make_parents=True)
    return path
