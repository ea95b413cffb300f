"""Where each step's metrics go besides `metrics.jsonl`: `training.report_to` (TensorBoard, wandb).

TensorBoard event files are written by tensorboardX (a maintained writer that needs neither
TensorFlow nor torch) under `checkpoint_dir/runs/`; wandb logs through its own client, which
honours WANDB_MODE (offline in tests). Both are optional installs: asking for one that is not
installed, or for wandb online without a login, is a one-line error before the model loads
(wandb itself would stop the run with a traceback at its first step).
"""

from __future__ import annotations

import netrc
import os
from numbers import Real
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError

INSTALL = {"tensorboard": ("tensorboardX", "rfai[tensorboard]"), "wandb": ("wandb", "wandb")}


def check_sinks(report_to: list[str]) -> None:
    """A one-line InputError for a sink whose library is not installed, or wandb without a login."""
    for name in report_to:
        module, package = INSTALL[name]
        try:
            __import__(module)
        except ImportError:
            raise InputError(
                f"training.report_to: {name} needs the {module} package (pip install '{package}')"
            ) from None
    if "wandb" in report_to and not _wandb_can_log():
        raise InputError(
            "training.report_to: wandb has no login: run `wandb login`, set WANDB_API_KEY, "
            "or set WANDB_MODE=offline to log to local files"
        )


def _wandb_can_log() -> bool:
    """Offline or disabled, an API key in the environment, or one `wandb login` saved in netrc."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class Reporters:
    """The configured metric sinks; `log` sends one step's numeric metrics to each."""

    def __init__(self, report_to: list[str], log_dir: Path, run_name: str, config: dict):
        self._sinks: list[Any] = []
        check_sinks(report_to)
        if "tensorboard" in report_to:
            from tensorboardX import SummaryWriter

            self._sinks.append(_TensorBoard(SummaryWriter(logdir=str(log_dir / "runs" / run_name))))
        if "wandb" in report_to:
            import wandb

            self._sinks.append(_Wandb(wandb.init(project="rfai", name=run_name, dir=str(log_dir), config=config)))

    def log(self, metrics: dict, step: int) -> None:
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, Real) and not isinstance(v, bool)}
        for sink in self._sinks:
            sink.log(numbers, step)

    def log_completions(self, completions: list[dict], step: int) -> None:
        if completions:
            for sink in self._sinks:
                sink.log_completions(completions, step)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def __enter__(self) -> "Reporters":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _TensorBoard:
    def __init__(self, writer: Any):
        self.writer = writer

    def log(self, numbers: dict, step: int) -> None:
        for key, value in numbers.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def log_completions(self, completions: list[dict], step: int) -> None:
        # TensorBoard's text tab renders markdown: one table row per sample.
        lines = ["| task | reward | tests | prompt | code |", "|---|---|---|---|---|"]
        for sample in completions:
            cells = [sample["task_id"], sample["reward"], tests_text(sample["tests"]), sample["prompt"], sample["code"]]
            lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")
        self.writer.add_text("completions", "\n".join(lines), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, run: Any):
        self.run = run

    def log(self, numbers: dict, step: int) -> None:
        self.run.log(numbers, step=step)

    def log_completions(self, completions: list[dict], step: int) -> None:
        import wandb

        columns = ["task_id", "reward", "tests", "prompt", "code"]
        data = [[c["task_id"], c["reward"], tests_text(c["tests"]), c["prompt"], c["code"]] for c in completions]
        self.run.log({"completions": wandb.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self.run.finish()


def tests_text(tests: dict | None) -> str:
    """`3/4` tests passed, or `-` for a sample without tests."""
    if not isinstance(tests, dict) or tests.get("total") is None:
        return "-"
    return f"{tests.get('passed', 0)}/{tests['total']}"


def _markdown_cell(value: object) -> str:
    text = "-" if value is None else str(value)
    return "<br>".join(line.replace("\\", "\\\\").replace("|", "\\|") for line in text.splitlines())
