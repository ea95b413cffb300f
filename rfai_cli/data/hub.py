"""Publish the dataset splits as a dataset repo on the Hugging Face Hub (or any Hub-compatible endpoint).

The order matters: find the split files, check every row (valid records, one type per field,
no secrets), write the card, stage what will be sent (the JSONL files, hard-linked, or Parquet
shards), and only then talk to the Hub: create the repo if missing, then one `upload_folder`
call, which is huggingface_hub's resumable path (a streamed, deduplicated upload; re-running an
interrupted upload sends only what is missing, and unchanged files make no commit), then the tag.

`HF_ENDPOINT` picks the server; it is read when huggingface_hub is imported. The token is used
for requests only: it never appears in messages, results or files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import InputError, RfaiError, first_line
from ..output import write_bytes
from ..records import SPLITS
from ..repo_ids import check_repo_id
from .layout import CARD_FILE, HUB_DATASET
from .parquet import DEFAULT_MAX_SHARD_SIZE, write_shards
from .splitcheck import SecretHit, SplitCheck, check_split, merge_schemas

if TYPE_CHECKING:
    import pyarrow as pa
    from huggingface_hub import HfApi

    from ..config import Config

FORMATS = ("jsonl", "parquet")
# Checked in this order; the first one set wins (the seed documented HUGGINGFACE_TOKEN).
TOKEN_ENV_VARS = ("HUGGINGFACE_TOKEN", "HF_TOKEN")
SAVED_LOGIN = "saved login (hf auth login)"
_TOKEN_HELP = "pass --token, set HUGGINGFACE_TOKEN or HF_TOKEN, or run `hf auth login`"


def missing_token() -> InputError:
    """The error for an upload with no token anywhere (bad input: exit 2, as a missing file)."""
    return InputError(f"no Hugging Face token found: {_TOKEN_HELP}")


@dataclass(frozen=True)
class Token:
    """A token and where it came from. Its repr never shows the value."""

    value: str | None = field(repr=False)
    source: str


def resolve_token(explicit: str | None = None) -> Token:
    """--token, then HUGGINGFACE_TOKEN, then HF_TOKEN, then the token saved by `hf auth login`."""
    if explicit:
        return Token(explicit.strip(), "--token")
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return Token(value, name)
    from huggingface_hub import get_token

    saved = get_token()
    return Token(saved, SAVED_LOGIN) if saved else Token(None, "none")


@dataclass(frozen=True)
class UploadFile:
    """One file of the upload: its path in the repo, size in bytes, and rows (None for the card)."""

    path: str
    size: int
    rows: int | None = None


@dataclass
class UploadResult:
    repo_id: str
    url: str
    revision: str
    token_source: str
    files: list[UploadFile]
    dry_run: bool = False
    private: bool | None = None  # the repo's visibility after the upload (None: a dry run of a new repo)
    repo_type: str = "dataset"  # or "model" (model_repo.py: adapters)
    usage: str = ""  # one line on how to use what was uploaded
    created: bool = False  # the repo did not exist before
    changed: bool = False  # a new commit was made
    commit: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None
    tag: str | None = None
    deleted: list[str] | None = None  # remote files removed (--overwrite); None when unknown
    secrets: int = 0  # found and uploaded anyway (--allow-secrets)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "files"}
        data["files"] = [f.__dict__ for f in self.files]
        data["bytes"] = sum(f.size for f in self.files)
        return data


Notify = Callable[[str], None]
Progress = Callable[[str, int, int], None]  # (what, done bytes, total bytes)


def upload_dataset(
    directory: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    tag: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    overwrite: bool = False,
    fmt: str = "jsonl",
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    allow_secrets: bool = False,
    dry_run: bool = False,
    write_card: bool = True,
    config: "Config | None" = None,
    progress_bars: bool = False,
    notify: Notify | None = None,
    on_progress: Progress | None = None,
) -> UploadResult:
    """Upload the splits in `directory` to the dataset repo `repo_id`; see the module docstring.

    Raises InputError for a bad directory, split file or option, RfaiError for refused secrets
    and for every Hub failure (one line, without the token).
    """
    notify = notify or (lambda message: None)
    directory = Path(directory)
    _check_options(repo_id, fmt, revision, create_pr, tag)
    checks = _check_splits(directory, notify, on_progress)
    secrets, first = _count_secrets(checks)
    if secrets and not allow_secrets:
        raise RfaiError(
            f"refusing to upload: {secrets} secret(s) found in the rows, the first at {first}; nothing was sent. "
            "Remove them with `rfai filter --drop-secrets` (or --redact-secrets), or pass --allow-secrets"
        )
    schema = merge_schemas(checks)
    if schema is None:
        conflict = next(check.conflict for check in checks if check.conflict)
        if fmt == "parquet":
            raise InputError(f"{conflict}; Parquet needs one type per field: fix those rows or use --format jsonl")
        notify(f"warning: {conflict}; datasets will have to guess that field's type")
    tok = resolve_token(token)
    notify(f"token: from {tok.source}" if tok.value else "token: none found")
    if tok.value is None and not dry_run:
        raise missing_token()
    with _staging(directory) as stage:
        files = _stage(
            stage, directory, checks, schema, repo_id, fmt, max_shard_size, write_card, dry_run, config, on_progress
        )
        if (stage / CARD_FILE).exists():
            card_secrets = _card_secrets(stage / CARD_FILE)
            if card_secrets and not allow_secrets:
                raise RfaiError(
                    f"refusing to upload: the dataset card has a secret at {card_secrets}; nothing was sent"
                )
        else:
            notify(
                f"warning: no {CARD_FILE}: without the card's split list, datasets will call evaluation.jsonl 'test'"
            )
        result = UploadResult(
            repo_id, "", revision or "main", tok.source, files, dry_run=dry_run, tag=tag, secrets=secrets,
            usage=f'load it with: datasets.load_dataset("{repo_id}")',
        )  # fmt: skip
        if dry_run:
            result.deleted = _dry_run_deletions(repo_id, tok, revision, files) if overwrite else []
            return result
        message = commit_message or _default_message(checks, fmt)
        try:
            _push(result, stage, tok, private, create_pr, message, overwrite, fmt, progress_bars, notify)
        except RfaiError:
            raise
        except Exception as exc:  # every library/HTTP failure becomes one line without the token
            raise hub_error(exc, result, tok) from None
    return result


# ---------------------------------------------------------------------------- local preparation


def _check_options(repo_id: str, fmt: str, revision: str | None, create_pr: bool, tag: str | None) -> None:
    check_repo_id(repo_id)
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if create_pr and revision not in (None, "main"):
        raise InputError("--create-pr opens a pull request against main; it cannot be combined with --revision")
    if create_pr and tag:
        raise InputError("--tag cannot be combined with --create-pr: tag the commit once the pull request is merged")


def _check_splits(directory: Path, notify: Notify, on_progress: Progress | None) -> list[SplitCheck]:
    if not directory.exists():
        raise InputError(
            f"{directory}: dataset directory not found (run `rfai collect` or `rfai train` first, or pass --dataset-dir)"
        )
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    from .layout import split_files

    present = list(split_files(directory).items())
    total = sum(path.stat().st_size for _, path in present)
    checks, done = [], 0
    for split, path in present:
        report = (lambda read, base=done: on_progress("checking rows", base + read, total)) if on_progress else None
        check = check_split(split, path, on_row=report)
        done += path.stat().st_size
        if check.rows == 0:
            notify(f"skipping {path.name}: no rows")
            continue
        notify(f"checked {path.name}: {check.rows:,} rows")
        checks.append(check)
    if not checks:
        names = ", ".join(f"{split}.jsonl" for split in SPLITS)
        raise InputError(f"{directory}: no dataset rows to upload (expected {names})")
    return checks


def _count_secrets(checks: list[SplitCheck]) -> tuple[int, SecretHit | None]:
    total = sum(check.secrets for check in checks)
    first = next((check.first_secret for check in checks if check.first_secret), None)
    return total, first


def _card_secrets(card: Path) -> str | None:
    from ..secrets import find_secrets

    for number, line in enumerate(card.read_text(encoding="utf-8").splitlines(), start=1):
        found = find_secrets(line)
        if found:
            return f"{CARD_FILE}:{number} ({found[0].kind})"
    return None


STAGING_PREFIX = ".rfai-upload-"


@contextmanager
def _staging(directory: Path) -> Iterator[Path]:
    # Inside the dataset directory, so hard links work (same filesystem) and nothing big lands in /tmp.
    # Named by our pid: what a killed upload left behind is removed by the next one.
    _remove_stale_staging(directory)
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=directory) as name:
        yield Path(name)


def _remove_stale_staging(directory: Path) -> None:
    for path in directory.glob(f"{STAGING_PREFIX}*"):
        pid = path.name[len(STAGING_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stage(
    stage: Path,
    directory: Path,
    checks: list[SplitCheck],
    schema: "pa.Schema | None",
    repo_id: str,
    fmt: str,
    max_shard_size: int,
    write_card: bool,
    dry_run: bool,
    config: "Config | None",
    on_progress: Progress | None,
) -> list[UploadFile]:
    """Put exactly what will be uploaded into `stage`; return it with sizes.

    The card is written in `stage`, from the same split files, run.json and previous card as in
    `directory`, then copied back, except in a dry run, which leaves `directory` as it was.
    """
    from .card import write_card as make_card
    from .layout import CURVES_FILE, RUN_FILE

    for check in checks:
        _link(check.path, stage / check.path.name)
    for name in (CARD_FILE, RUN_FILE, CURVES_FILE):
        if (directory / name).is_file():
            shutil.copyfile(directory / name, stage / name)
    if write_card:
        make_card(stage, repo_id=repo_id, config=config)
        if not dry_run:
            write_bytes(directory / CARD_FILE, (stage / CARD_FILE).read_bytes())
    if fmt == "jsonl":
        files = [UploadFile(c.path.name, c.path.stat().st_size, c.rows) for c in checks]
    else:
        files = _stage_parquet(stage, checks, schema, max_shard_size, on_progress)
    for name in (CARD_FILE, CURVES_FILE):
        if (stage / name).exists():
            files.append(UploadFile(name, (stage / name).stat().st_size))
    return files


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, target)


def _stage_parquet(
    stage: Path, checks: list[SplitCheck], schema: "pa.Schema", max_shard_size: int, on_progress: Progress | None
) -> list[UploadFile]:
    """Replace the staged JSONL with Parquet shards, and point the staged card at them."""
    files, data_files = [], []
    total, done = sum(c.bytes for c in checks), 0
    for check in checks:
        if on_progress:
            on_progress("writing parquet", done, total)
        shards = write_shards(check, schema, stage, max_shard_size)
        done += check.bytes
        (stage / check.path.name).unlink()  # only the shards go up
        files += [UploadFile(name, (stage / name).stat().st_size) for name in shards]
        data_files.append({"split": check.split, "path": shards})
    if on_progress:
        on_progress("writing parquet", total, total)
    if (stage / CARD_FILE).exists():
        _point_card_at_shards(stage / CARD_FILE, schema, data_files)
    return files


def _point_card_at_shards(card: Path, schema: "pa.Schema", data_files: list[dict]) -> None:
    """`configs` lists the exact shard names (stale shards of an earlier upload are never read), and the
    features are the shards' own schema, the one merged over every row of every split."""
    from huggingface_hub.repocard import metadata_load, metadata_save

    metadata = metadata_load(card) or {}
    info = metadata.get("dataset_info")
    info = info if isinstance(info, dict) else {}
    metadata["dataset_info"] = {**info, "features": _features_yaml(schema)}
    metadata["configs"] = [{"config_name": "default", "data_files": data_files}]
    metadata_save(card, metadata)


def _features_yaml(schema: "pa.Schema") -> list:
    """The `dataset_info.features` YAML that datasets writes for this Arrow schema (through its public API)."""
    from datasets import DatasetInfo, Features
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData()
    DatasetInfosDict(default=DatasetInfo(features=Features.from_arrow_schema(schema))).to_dataset_card_data(card_data)
    return card_data["dataset_info"]["features"]


def _default_message(checks: list[SplitCheck], fmt: str) -> str:
    rows = sum(check.rows for check in checks)
    splits = ", ".join(f"{check.split} {check.rows:,}" for check in checks)
    return f"Upload {rows:,} rows ({splits}) as {fmt} with rfai"


# ---------------------------------------------------------------------------- talking to the Hub


def downloaded_dataset(source: str) -> Path:
    """The local copy, in the Hub cache, of the split files of `hf://datasets/OWNER/NAME[@REVISION]`
    (JSONL as rfai uploads it, or Parquet shards); a second read downloads nothing new."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = source.removeprefix(HUB_DATASET).partition("@")
    check_repo_id(repo_id)
    tok = resolve_token()
    quiet_hub_client(progress_bars=False)
    try:
        path = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision or None,
            token=tok.value or False,
            allow_patterns=["*.jsonl", "*.jsonl.gz", "*.parquet", "data/*.parquet"],
        )
    except Exception as exc:  # every library/HTTP failure becomes one line without the token
        raise hub_error(exc, UploadResult(repo_id, "", revision or "main", tok.source, []), tok, reading=True) from None
    return Path(path)


def quiet_hub_client(progress_bars: bool) -> None:
    """huggingface_hub's own output: its bars only where asked for (a terminal), its log never
    (rfai reports outcomes itself)."""
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    if not progress_bars:
        disable_progress_bars()
    hf_logging.set_verbosity_error()


def hub_api(tok: Token) -> "HfApi":
    from huggingface_hub import HfApi

    from .. import __version__

    return HfApi(token=tok.value or False, library_name="rfai", library_version=__version__)


def _dry_run_deletions(repo_id: str, tok: Token, revision: str | None, files: list[UploadFile]) -> list[str] | None:
    """Which remote files --overwrite would delete: a read-only listing; None when it cannot be known."""
    try:
        remote = hub_api(tok).list_repo_files(repo_id, repo_type="dataset", revision=revision)
    except Exception:
        return None
    return _stale(remote, files)


def _stale(remote: list[str], files: list[UploadFile]) -> list[str]:
    # huggingface_hub never deletes .gitattributes through delete_patterns; neither do we report it.
    uploaded = {f.path for f in files}
    return sorted(path for path in remote if path not in uploaded and path != ".gitattributes")


def _push(
    result: UploadResult,
    stage: Path,
    tok: Token,
    private: bool,
    create_pr: bool,
    message: str,
    overwrite: bool,
    fmt: str,
    progress_bars: bool,
    notify: Notify,
) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    quiet_hub_client(progress_bars)
    api = hub_api(tok)
    repo_id, revision = result.repo_id, result.revision
    base = "main" if create_pr else revision
    new_branch = False
    try:
        info = api.repo_info(repo_id, repo_type="dataset", revision=base)
    except RepositoryNotFoundError:
        info = None
    except RevisionNotFoundError:  # the repo exists, the branch does not yet: it will start at main
        info, new_branch = api.repo_info(repo_id, repo_type="dataset"), True
    before = info.sha if info else None
    if info is None:
        notify(f"creating dataset repo {repo_id} ({'private' if private else 'public'})")
        result.url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        result.created, result.private = True, private
    else:
        _check_visibility(repo_id, info, private)
        result.url, result.private = f"{api.endpoint}/datasets/{repo_id}", bool(info.private)
    if (new_branch or result.created) and revision != "main" and not revision.startswith("refs/") and not create_pr:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)

    remote = [] if result.created else api.list_repo_files(repo_id, repo_type="dataset", revision=base)
    delete: list[str] = []
    if overwrite:
        result.deleted = _stale(remote, result.files)
        delete = ["*"]
    elif fmt == "parquet":
        # A split's old shards go with its new ones, as push_to_hub does (their count may have changed).
        uploaded = {f.path for f in result.files}
        splits = {f.path.split("/")[1].split("-")[0] for f in result.files if f.path.startswith("data/")}
        result.deleted = sorted(p for p in remote if _is_shard_of(p, splits) and p not in uploaded)
        delete = [f"data/{split}-*.parquet" for split in sorted(splits)]
    else:
        result.deleted = []

    size = sum(f.size for f in result.files)
    notify(f"uploading {len(result.files)} file(s), {human_size(size)}, to {repo_id}@{revision}")
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=stage,
        allow_patterns=[f.path for f in result.files],
        delete_patterns=delete or None,
        commit_message=message,
        revision=None if create_pr else revision,
        create_pr=create_pr,
    )
    result.commit, result.commit_url, result.pr_url = commit.oid, commit.commit_url, commit.pr_url
    result.changed = commit.oid != before
    if not result.changed:
        result.deleted = []
    if result.tag:
        _tag(api, repo_id, result.tag, commit.oid)


def _check_visibility(repo_id: str, info: Any, private: bool) -> None:
    if private and not info.private:
        raise RfaiError(
            f"{repo_id} exists and is public, but a private upload was asked for (--private or huggingface.private); "
            "make the repo private on the Hub first, or upload elsewhere"
        )


def check_write_access(repo_id: str, *, private: bool = False, token: str | None = None) -> Token:
    """What an upload at the end of a long run needs, asked before the run starts: a token the
    Hub accepts, with write access, under the repo's namespace, and (for a repo that exists) the
    visibility asked for. Sends nothing; RfaiError (one line, without the token) otherwise."""
    from huggingface_hub.errors import RepositoryNotFoundError

    check_repo_id(repo_id)
    tok = resolve_token(token)
    if tok.value is None:
        raise missing_token()
    api, namespace = hub_api(tok), repo_id.split("/")[0]
    result = UploadResult(repo_id, "", "main", tok.source, [])
    try:
        me = api.whoami()
        role = (me.get("auth") or {}).get("accessToken", {}).get("role")
        if role == "read":
            raise RfaiError(f"the token from {tok.source} is read-only: uploading to {repo_id} needs a write token")
        names = {me.get("name"), *(org.get("name") for org in me.get("orgs") or [])}
        if namespace not in names:
            raise RfaiError(
                f"the token from {tok.source} belongs to '{me.get('name')}', who may not write under '{namespace}' "
                f"(its namespaces: {', '.join(sorted(n for n in names if n))})"
            )
        try:
            _check_visibility(repo_id, api.repo_info(repo_id, repo_type="dataset"), private)
        except RepositoryNotFoundError:
            pass  # the upload creates it
    except RfaiError:
        raise
    except Exception as exc:
        raise hub_error(exc, result, tok) from None
    return tok


def _is_shard_of(path: str, splits: set[str]) -> bool:
    return any(path.startswith(f"data/{split}-") and path.endswith(".parquet") for split in splits)


def _tag(api: "HfApi", repo_id: str, tag: str, commit: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_tag(repo_id, tag=tag, revision=commit, repo_type="dataset")
    except HfHubHTTPError as exc:
        if exc.response is None or exc.response.status_code != 409:
            raise
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        existing = next((ref.target_commit for ref in refs.tags if ref.name == tag), None)
        if existing != commit:  # the same tag on the same commit is a re-run, not a conflict
            where = f" (at {existing[:7]})" if existing else ""
            raise RfaiError(
                f"tag '{tag}' already exists on {repo_id}{where}; tags are not moved: choose a new tag"
            ) from None


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def hub_error(exc: Exception, result: UploadResult, tok: Token, reading: bool = False) -> RfaiError:
    """One line for each failure the seed's troubleshooting lists, and a plain one for the rest.
    `reading`: the failure was a download (`stats hf://...`), so the advice is about reading."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id, namespace = result.repo_id, result.repo_id.split("/")[0]
    status = getattr(getattr(exc, "response", None), "status_code", None)
    action = "download" if reading else "upload"
    if isinstance(exc, RepositoryNotFoundError):
        access = "that it is public or the token may read it" if reading else f"that you may write under '{namespace}'"
        message = (
            f"{repo_id}: {result.repo_type} repo not found, or the token from {tok.source} has no access to it "
            f"(check the name, and {access})"
        )
    elif isinstance(exc, RevisionNotFoundError):
        message = f"{repo_id}: revision '{result.revision}' not found"
    elif status == 401:
        message = (
            f"authentication failed: the Hub rejected the token from {tok.source} "
            "(check it is complete and not expired; tokens are at https://huggingface.co/settings/tokens)"
        )
    elif status == 403 and reading:
        message = (
            f"permission denied on {repo_id}: the token from {tok.source} cannot read it "
            "(a gated dataset needs its terms accepted on the Hub by the token's owner)"
        )
    elif status == 403:
        message = (
            f"permission denied on {repo_id}: the token from {tok.source} cannot write there "
            f"(use a token with write access, and check you are a member of '{namespace}')"
        )
    elif isinstance(exc, httpx2.TimeoutException) or status in (502, 503, 504):
        resume = "files already downloaded are kept" if reading else "data already sent is not sent again"
        message = f"{action} timed out after the client's retries. Re-run the same command to resume ({resume})"
        if not reading:
            message += "; on a slow link try --format parquet with a smaller --max-shard-size"
    elif isinstance(exc, httpx2.TransportError):
        message = f"cannot reach the Hub: {exc} (check the connection, or HF_ENDPOINT)"
    elif isinstance(exc, HfHubHTTPError):
        message = f"the Hub refused the {action} (HTTP {status}): {first_line(getattr(exc, 'server_message', None) or str(exc))}"
    elif isinstance(exc, (ValueError, OSError)):
        message = f"{action} failed: {first_line(str(exc))}"
    else:
        raise exc  # a bug, not a user error: keep the traceback
    return RfaiError(_scrub(message, tok))


def _scrub(text: str, tok: Token) -> str:
    return text.replace(tok.value, "***") if tok.value else text
