"""`rfai upload`: publish the dataset splits as a dataset repo on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import print_json, progress_enabled, stderr, stdout
from ..errors import InputError
from .common import ConfigOption, JsonOption, QuietOption, SetOption


def upload(
    repo_id: Annotated[
        Optional[str],
        typer.Option(
            "--repo-id",
            "--repo_id",
            help="OWNER/NAME of the dataset repo (default: huggingface.dataset_repo_id).",
            show_default=False,
        ),
    ] = None,
    dataset_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--dataset-dir",
            "-d",
            "--dataset_dir",
            help="Directory with train/validation/evaluation.jsonl (default: huggingface.dataset_output_dir).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            "--hf-token",
            "--hf_token",
            help="Hub token. Default: HUGGINGFACE_TOKEN, then HF_TOKEN, then `hf auth login`'s saved token.",
            show_default=False,
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo private (default: huggingface.private).")
    ] = False,
    revision: Annotated[
        Optional[str], typer.Option("--revision", help="Branch to commit to (created if missing).", show_default=False)
    ] = None,
    tag: Annotated[
        Optional[str], typer.Option("--tag", help="Tag the uploaded commit, e.g. v2.", show_default=False)
    ] = None,
    create_pr: Annotated[
        bool, typer.Option("--create-pr", help="Open a pull request instead of committing to main.")
    ] = False,
    commit_message: Annotated[
        Optional[str], typer.Option("--commit-message", "-m", help="Commit message.", show_default=False)
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Delete files in the repo that are not part of this upload (same commit)."),
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl (as written) or parquet (sharded; for large datasets).")
    ] = "jsonl",
    max_shard_size: Annotated[
        str, typer.Option("--max-shard-size", help="Parquet: JSONL bytes per shard, e.g. 500MB.")
    ] = "500MB",
    allow_secrets: Annotated[
        bool, typer.Option("--allow-secrets", help="Upload even if rows contain API keys or tokens.")
    ] = False,
    no_card: Annotated[
        bool, typer.Option("--no-card", help="Do not regenerate README.md (an existing one is still uploaded).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be uploaded, with sizes; send and change nothing.")
    ] = False,
    adapters: Annotated[
        Optional[Path],
        typer.Option(
            "--adapters",
            metavar="DIR",
            help="Publish these LoRA adapters (e.g. checkpoints) as the MODEL repo --repo-id, with a model card.",
            show_default=False,
        ),
    ] = None,
    fuse: Annotated[
        bool, typer.Option("--fuse", help="With --adapters: upload the fused model too (mlx_lm.fuse).")
    ] = False,
    config: ConfigOption = None,
    assignments: SetOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Publish the dataset splits as a dataset repo on the Hugging Face Hub."""
    from ..config import load_config
    from ..data.hub import upload_dataset
    from ..data.parquet import parse_size

    settings = load_config(
        config,
        # With --adapters, --repo-id names the model repo; the config's dataset repo is linked from its card.
        {
            "huggingface.dataset_repo_id": None if adapters else repo_id,
            "huggingface.private": True if private else None,
        },
        assignments=assignments or (),
    )
    hf = settings.huggingface
    if adapters is not None:
        dataset_only = {
            "--dataset-dir": dataset_dir, "--revision": revision, "--tag": tag, "--create-pr": create_pr,
            "--overwrite": overwrite, "--format": fmt != "jsonl", "--allow-secrets": allow_secrets, "--no-card": no_card,
        }  # fmt: skip
        given = [name for name, value in dataset_only.items() if value]
        if given:
            raise InputError(f"{', '.join(given)}: for a dataset upload, not with --adapters")
        if not repo_id:
            raise InputError("--adapters needs --repo-id OWNER/NAME: the model repo to create or update")
        return _upload_adapters(
            adapters, repo_id, token, hf.private, hf.dataset_repo_id, fuse, commit_message, dry_run, as_json, quiet
        )
    if fuse:
        raise InputError("--fuse goes with --adapters DIR")
    if not hf.dataset_repo_id:
        raise InputError("no repository: pass --repo-id OWNER/NAME or set huggingface.dataset_repo_id in the config")
    err = stderr()
    bars = _Bars(enabled=progress_enabled() and not quiet)

    def notify(message: str) -> None:
        bars.stop()  # a finished phase's bar goes before the next line (and before the Hub's own bars)
        if not quiet or message.startswith(("warning", "error")):
            err.print(message, markup=False, highlight=False)

    try:
        result = upload_dataset(
            dataset_dir or Path(hf.dataset_output_dir),
            hf.dataset_repo_id,
            token=token,
            private=hf.private,
            revision=revision,
            tag=tag,
            create_pr=create_pr,
            commit_message=commit_message,
            overwrite=overwrite,
            fmt=fmt,
            max_shard_size=parse_size(max_shard_size),
            allow_secrets=allow_secrets,
            dry_run=dry_run,
            write_card=not no_card,
            config=settings,
            progress_bars=progress_enabled() and not quiet,
            notify=notify,
            on_progress=bars.update,
        )
    finally:
        bars.stop()
    if as_json:
        print_json(result.to_json())
    elif not quiet:
        _render(result)


def _upload_adapters(adapters, repo_id, token, private, dataset_repo_id, fuse, commit_message, dry_run, as_json, quiet):
    from ..data.model_repo import upload_adapters

    err = stderr()
    result = upload_adapters(
        adapters,
        repo_id,
        token=token,
        private=private,
        dataset_repo_id=dataset_repo_id,
        fuse=fuse,
        commit_message=commit_message,
        dry_run=dry_run,
        progress_bars=progress_enabled() and not quiet,
        notify=lambda message: quiet or err.print(message, markup=False, highlight=False),
    )
    if as_json:
        print_json(result.to_json())
    elif not quiet:
        _render(result)


def _render(result) -> None:
    from rich.table import Table

    from ..data.hub import human_size

    out, err = stdout(), stderr()
    if result.dry_run:
        out.print(f"dry run (nothing was sent): would upload to {result.repo_id}@{result.revision}", markup=False)
        table = Table()
        table.add_column("file")
        table.add_column("rows", justify="right")
        table.add_column("size", justify="right")
        for f in result.files:
            table.add_row(f.path, "" if f.rows is None else f"{f.rows:,}", human_size(f.size))
        table.add_row("total", "", human_size(sum(f.size for f in result.files)))
        out.print(table)
        if result.deleted:
            out.print("would delete: " + ", ".join(result.deleted), markup=False)
        elif result.deleted is None:
            out.print("would delete: unknown (the repo could not be listed)", markup=False)
        return
    if result.secrets:
        err.print(f"warning: uploaded {result.secrets} secret(s) (--allow-secrets)", markup=False)
    if not result.changed:
        out.print(f"{result.repo_id} is already up to date at {result.commit[:7]}: no new commit", markup=False)
    else:
        verb = "created and uploaded" if result.created else "uploaded"
        out.print(f"{verb} {len(result.files)} file(s) to {result.url} (commit {result.commit[:7]})", markup=False)
        if result.deleted:
            out.print("deleted: " + ", ".join(result.deleted), markup=False)
    if result.pr_url:
        out.print(f"pull request: {result.pr_url}", markup=False)
    if result.tag:
        out.print(f"tagged {result.tag}", markup=False)
    out.print(result.usage, markup=False)
    if result.private:
        out.print(
            "(a private repo: datasets reads the token from HF_TOKEN, not HUGGINGFACE_TOKEN, or from `hf auth login`;"
            ' or pass token="hf_...")',
            markup=False,
        )


class _Bars:
    """Rich bars for the local phases (checking rows, writing Parquet); nothing when not a TTY.

    Stopped before each message, so they never overlap huggingface_hub's own upload display.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}

    def update(self, what: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=stderr(), transient=True
            )
            self._progress.start()
            self._tasks = {}
        if what not in self._tasks:
            self._tasks[what] = self._progress.add_task(what, total=total)
        self._progress.update(self._tasks[what], completed=done, total=total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
