"""`rfai train`: run the RLAIF loop: sample, score against the teacher, update LoRA adapters."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from .. import console
from ..errors import InputError, RfaiError
from .common import (
    AdapterPathOption,
    ChatTemplateArgsOption,
    ConfigOption,
    DatasetDirOption,
    JsonOption,
    ModelOption,
    OldDatasetDirOption,
    QuietOption,
    SetOption,
    SkipWarnings,
    student_and_output,
)


def train(
    config_path: ConfigOption = None,
    assignments: SetOption = None,
    prompts: Annotated[
        Optional[str],
        typer.Option(
            "--prompts",
            "-p",
            help="Training prompts: a JSONL file, `starter`, `builtin` or `humaneval` \\[data.train_prompts].",
        ),
    ] = None,
    max_steps: Annotated[
        Optional[int],
        typer.Option(
            "--max-steps", min=1, help="Total GRPO steps, those of a resumed run included \\[training.max_steps]."
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, help="Prompts per step \\[training.batch_size].")
    ] = None,
    learning_rate: Annotated[
        Optional[float],
        typer.Option("--learning-rate", "--lr", help="The optimizer's step size \\[training.learning_rate]."),
    ] = None,
    seed: Annotated[
        Optional[int], typer.Option("--seed", help="Seed of sampling and the adapters' init \\[training.seed].")
    ] = None,
    checkpoint_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--checkpoint-dir",
            help="Where adapters and resume state go \\[training.checkpoint_dir].",
            show_default=False,
        ),
    ] = None,
    dataset_dir: DatasetDirOption = None,
    output_dir: OldDatasetDirOption = None,
    model: ModelOption = None,
    adapter_path: AdapterPathOption = None,
    chat_template_args: ChatTemplateArgsOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in training.checkpoint_dir.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --resume: continue even if the settings changed.")
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Data-parallel ranks on this machine (MLX's ring backend); the exit status is the worst rank's.",
        ),
    ] = 1,
    hostfile: Annotated[
        Optional[Path],
        typer.Option(
            "--hostfile",
            help="One rank per host in this mlx.launch host file, over ssh for other machines"
            " (docs/distributed.md); the exit status is the worst rank's.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend",
            help="With --hostfile: ring, jaccl or nccl. Default: the host file's, else ring.",
            show_default=False,
        ),
    ] = None,
    starting_port: Annotated[
        Optional[int],
        typer.Option(
            "--starting-port",
            min=1,
            max=65535,
            help="With --hostfile: the first port the ranks use.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run the RLAIF loop: sample, score against the teacher, update LoRA adapters."""
    from ..config import load_config

    # Read before any rank starts: a bad config is one error, not one per rank.
    config = load_config(
        config_path,
        {
            "training.max_steps": max_steps,
            "training.batch_size": batch_size,
            "training.learning_rate": learning_rate,
            "training.seed": seed,
            "training.checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None,
            **student_and_output(dataset_dir, output_dir, model, adapter_path, chat_template_args),
        },
        assignments=assignments or (),
    )
    launched = _launch(nproc, hostfile, backend, starting_port)
    if launched is not None:
        raise typer.Exit(launched)
    from ..data.layout import dataset_lock
    from ..data.prompts import held_out_source, load_prompts, prompt_source
    from ..train.distributed import init_world
    from ..train.launch import watch_launcher
    from ..train.loop import run_train

    watch_launcher()
    warnings = SkipWarnings()
    _, source, named_by = prompt_source(config, prompts, "train")
    tasks = load_prompts(source, "train", on_skip=warnings, named_by=named_by)
    held_out = {}
    for split in ("validation", "evaluation"):
        held_out_from, key = held_out_source(config, source, split)
        held_out[split] = load_prompts(held_out_from, split, on_skip=warnings, named_by=key)
    warnings.finish()
    err = console.stderr()
    world = init_world(config.training.rank_timeout)
    # Rank 0 writes the dataset and holds its lock; the other ranks send it their rows.
    lock = dataset_lock if world.is_main else _unlocked
    silent = quiet or as_json or not world.is_main
    with lock(config.huggingface.dataset_output_dir) as directory, _step_view(err, config, silent) as on_step:
        summary = run_train(
            config,
            tasks,
            dataset_dir=directory,
            validation=held_out["validation"],
            evaluation=held_out["evaluation"],
            resume=resume,
            force=force,
            prompt_source=source,
            on_step=on_step,
            on_notice=lambda message: err.print(f"warning: {message}", markup=False, highlight=False),
            world=world,
        )
    if not world.is_main:
        return
    result = {
        "steps": summary.steps,
        "ended": summary.ended,
        "rows_written": summary.rows_written,
        "checkpoint": summary.checkpoint,
        "upload": summary.upload,
        "upload_error": summary.upload_error,
    }
    if as_json:
        console.print_json(result)
    elif not quiet:
        out = console.stdout()
        out.print(
            f"{summary.steps} steps ({summary.ended}); {summary.rows_written} rows written; "
            f"checkpoint {summary.checkpoint}",
            highlight=False,
        )
        if summary.upload:
            out.print(summary.upload, highlight=False)
        out.print(f"next: rfai stats {directory}/evaluation.jsonl --compare step", highlight=False)
    if summary.upload_error:
        raise RfaiError(summary.upload_error)


def step_line(m: dict) -> str:
    """One step's figures: what the live view shows, and the plain line off a terminal."""
    passed = "-" if m.get("pass_rate") is None else f"{m['pass_rate']:.0%}"
    reward = "-" if m.get("reward_mean") is None else f"{m['reward_mean']:.3f}"
    teacher = f", teacher joined {m['teacher_joined_fraction']:.0%}" if m.get("teacher_joined_fraction") else ""
    unrewarded = f", no reward {m['unrewarded_fraction']:.0%}" if m.get("unrewarded_fraction") else ""
    return (
        f"step {m['step']}: reward {reward}, pass {passed}, kl {m['kl']:.3g}, loss {m['loss']:.3g}, "
        f"zero-variance groups {m['zero_variance_fraction']:.0%}{teacher}{unrewarded}; "
        f"generate {m['seconds_generate']:.0f}s / score {m['seconds_score']:.0f}s / train {m['seconds_train']:.0f}s"
    )


def completion_lines(m: dict, head: int = 60) -> list[str]:
    """The step's `training.log_completions` samples, one line each: task, reward, tests, and the
    heads of the prompt and the code on one line."""
    from ..train.reporting import tests_text

    def one_line(text: str) -> str:
        # Generated text is untrusted: control characters (a terminal escape) are shown, not sent.
        flat = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in " ".join(text.split())
        )
        return flat if len(flat) <= head else flat[: head - 1] + "…"

    return [
        f"  {c['task_id']}: reward {'-' if c['reward'] is None else format(c['reward'], '.3f')}, "
        f"tests {tests_text(c['tests'])} | {one_line(c['prompt'])} | {one_line(c['code'])}"
        for c in m.get("completions", [])
    ]


def _print_step(console, m: dict) -> None:
    for line in [step_line(m), *completion_lines(m)]:
        console.print(line, highlight=False, markup=False)


@contextmanager
def _step_view(err, config, quiet: bool) -> Iterator[Callable[[dict], None] | None]:
    """On a terminal, each step's line printed above a live progress bar with an ETA, so the run's
    history stays in the scrollback; plain lines otherwise; nothing when `quiet` (--json, or a
    rank other than 0)."""
    if quiet:
        yield None
        return
    if not err.is_terminal:
        yield lambda m: _print_step(err, m)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("training"),
        BarColumn(bar_width=None),  # the bar takes what the terminal has left: the counts and ETA always fit
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        expand=True,
    ) as progress:
        task = progress.add_task("train", total=config.training.max_steps)

        def on_step(m: dict) -> None:
            _print_step(progress.console, m)
            progress.update(task, completed=m["step"])

        yield on_step


@contextmanager
def _unlocked(directory) -> Iterator[Path]:
    yield Path(directory)


_LAUNCH_OPTIONS = ("--nproc", "--hostfile", "--backend", "--starting-port")


def _launch(nproc: int, hostfile: Path | None, backend: str | None, starting_port: int | None) -> int | None:
    """The exit status of the ranks --nproc or --hostfile started; None for a single process."""
    from ..train.hostfile import BACKENDS, read_hostfile
    from ..train.launch import STARTING_PORT, launch_hosts, launch_local

    if hostfile is None:
        if backend is not None or starting_port is not None:
            raise InputError("--backend and --starting-port go with --hostfile")
        if nproc == 1:
            return None
    elif nproc > 1:
        raise InputError("--nproc and --hostfile both start ranks: give one of them")
    if "MLX_RANK" in os.environ:  # already one rank of a launch (mlx.launch, or rfai's own)
        raise InputError(
            f"{'--nproc' if hostfile is None else '--hostfile'} starts ranks itself; drop it when launching with mlx.launch"
        )
    args = _rank_args(sys.argv[2:])
    if hostfile is None:
        return launch_local(args, nproc)
    hosts = read_hostfile(hostfile)
    backend = backend or hosts.backend or "ring"
    if backend == "mpi":
        raise InputError(
            "--backend mpi: MPI starts the ranks itself; run `mpirun ... rfai train` (docs/distributed.md)"
        )
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    return launch_hosts(args, hosts, backend, starting_port or STARTING_PORT)


def _rank_args(args: list[str]) -> list[str]:
    """This command's arguments for each rank: all of them but the ones that start ranks."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in _LAUNCH_OPTIONS)):
            out.append(arg)
    return out
