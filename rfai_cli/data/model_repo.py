"""Publish trained LoRA adapters as a Hugging Face model repo, as mlx-lm users do with
`mlx_lm.fuse --upload-repo`: the adapters in mlx-lm's format, a model card that names the base
model and links the dataset the run wrote, and with `fuse` the fused model itself (mlx_lm.fuse's
output at the top, the adapters under `adapters/`).

Everything is staged locally first (and fused there), then sent in one `upload_folder` commit;
the token and error handling are the dataset upload's (hub.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..engine import embedded
from ..errors import InputError, RfaiError, first_line
from ..repo_ids import check_repo_id
from .hub import (
    Notify,
    UploadFile,
    UploadResult,
    hub_api,
    hub_error,
    missing_token,
    quiet_hub_client,
    resolve_token,
)
from .layout import CARD_FILE

ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")


def upload_adapters(
    adapter_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    dataset_repo_id: str | None = None,
    fuse: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
    progress_bars: bool = False,
    notify: Notify | None = None,
) -> UploadResult:
    """Upload the adapters in `adapter_dir` (and the fused model with `fuse`) to the model repo `repo_id`."""
    notify = notify or (lambda message: None)
    directory = Path(adapter_dir)
    check_repo_id(repo_id)
    if dataset_repo_id:
        check_repo_id(dataset_repo_id)
    adapter_config = _adapter_config(directory)
    base = published_base_model(adapter_config["model"])
    tok = resolve_token(token)
    notify(f"token: from {tok.source}" if tok.value else "token: none found")
    if tok.value is None and not dry_run:
        raise missing_token()
    with tempfile.TemporaryDirectory(prefix=".rfai-model-") as staging:
        stage = Path(staging)
        adapters = stage / "adapters" if fuse else stage
        adapters.mkdir(exist_ok=True)
        shutil.copyfile(directory / "adapters.safetensors", adapters / "adapters.safetensors")
        # Others read the base model off the file: a Hub id, never a path on this machine.
        shipped = {**adapter_config, "model": base or adapter_config["model"]}
        (adapters / "adapter_config.json").write_text(json.dumps(shipped, indent=2) + "\n")
        if fuse and not dry_run:
            notify(f"fusing the adapters into {adapter_config['model']} (mlx_lm.fuse)")
            _fuse(adapter_config["model"], directory, stage)
        (stage / CARD_FILE).write_text(model_card(repo_id, base, adapter_config, dataset_repo_id, fused=fuse))
        files = [
            UploadFile(str(path.relative_to(stage)), path.stat().st_size)
            for path in sorted(stage.rglob("*"))
            if path.is_file()
        ]
        result = UploadResult(
            repo_id,
            "",
            "main",
            tok.source,
            files,
            dry_run=dry_run,
            repo_type="model",
            usage=usage(repo_id, base or adapter_config["model"], fuse),
        )
        if dry_run:
            return result
        quiet_hub_client(progress_bars)
        api = hub_api(tok)
        try:
            result.url = str(api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True))
            result.private = api.repo_info(repo_id, repo_type="model").private
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=stage,
                commit_message=commit_message or f"rfai: LoRA adapters for {base or 'a local model'}",
            )
        except Exception as exc:  # every library/HTTP failure becomes one line without the token
            raise hub_error(exc, result, tok) from None
        result.commit, result.commit_url, result.changed = commit.oid, commit.commit_url, True
    return result


def _adapter_config(directory: Path) -> dict:
    for name in ADAPTER_FILES:
        if not (directory / name).is_file():
            raise InputError(f"{directory}: {name} not found (--adapters takes a directory of mlx-lm adapters)")
    try:
        config = json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{directory / 'adapter_config.json'}: not readable JSON: {first_line(exc)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise InputError(
            f'{directory / "adapter_config.json"}: names no base model ("model"): adapters from rfai train and '
            "mlx_lm.lora have it; add it by hand for others"
        )
    return config


def published_base_model(model: str) -> str | None:
    """The Hub id others can load for the base model: the id itself, the embedded model's original,
    or None for a local model that has none."""
    path = Path(model).expanduser()
    if path.is_relative_to(embedded.cache_root()) and path.name.startswith(embedded.MODEL_NAME.lower()):
        return embedded.HUB_ID
    if path.exists() or model.count("/") != 1:
        return None
    return model


def usage(repo_id: str, base: str, fused: bool) -> str:
    if fused:
        return f"use it with: mlx_lm.generate --model {repo_id} --prompt '...'"
    return (
        f"use it with: hf download {repo_id} --local-dir adapters; "
        f"mlx_lm.generate --model {base} --adapter-path adapters --prompt '...'"
    )


def model_card(
    repo_id: str, base: str | None, adapter_config: dict, dataset_repo_id: str | None, *, fused: bool
) -> str:
    """README.md of the model repo: the Hub's metadata (base model, its relation, the dataset), then how to use it."""
    import yaml

    metadata: dict = {"library_name": "mlx", "pipeline_tag": "text-generation"}
    if base:
        metadata |= {"base_model": base, "base_model_relation": "merge" if fused else "adapter"}
    metadata["tags"] = ["mlx", "lora", "rfai", "rlaif", "grpo", "code"]
    if dataset_repo_id:
        metadata["datasets"] = [dataset_repo_id]
    lora = adapter_config.get("lora_parameters") or {}
    what = "The fused model" if fused else "LoRA adapters"
    lines = [
        f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n",
        f"# {repo_id.split('/')[-1]}\n",
        f"{what} for [{base}](https://huggingface.co/{base}), " if base else f"{what} for a local model, ",
        "trained with rfai by reinforcement learning from AI feedback (GRPO on sandboxed test results "
        "and a teacher's rubric scores).\n",
        "## Use\n",
        f"```bash\n{usage(repo_id, base or 'BASE_MODEL', fused).removeprefix('use it with: ').replace('; ', chr(10))}\n```\n",
    ]
    if dataset_repo_id:
        lines.append(
            f"## Training data\n\nEvery sample the run generated, with its scores and rewards: "
            f"[{dataset_repo_id}](https://huggingface.co/datasets/{dataset_repo_id}).\n"
        )
    lines.append(
        f"## Adapters\n\nLoRA rank {lora.get('rank', '?')}, scale {lora.get('scale', '?')}, on the last "
        f"{adapter_config.get('num_layers', '?')} blocks, in mlx-lm's format"
        + (" (under `adapters/`)." if fused else ".")
        + "\n"
    )
    return "\n".join(lines)


def _fuse(base_model: str, adapter_dir: Path, out: Path) -> None:
    """mlx_lm.fuse, in its own process (its conventions and its memory): the fused model into `out`."""
    command = [sys.executable, "-m", "mlx_lm", "fuse", "--model", base_model, "--adapter-path", str(adapter_dir)]
    ran = subprocess.run([*command, "--save-path", str(out)], capture_output=True, text=True)
    if ran.returncode != 0:
        last = ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else f"exit status {ran.returncode}"
        raise RfaiError(f"mlx_lm.fuse failed: {first_line(last)}")
