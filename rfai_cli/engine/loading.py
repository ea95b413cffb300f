"""Load an mlx-lm model (local path, Hub id, or the embedded default) with optional LoRA adapters.

Weights are then fitted to the device (`device.fit_to_device`: float32 on CPU, as stored on a GPU).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import RfaiError, first_line
from . import embedded
from .device import fit_to_device

# "org/name" on the Hub; anything else that is not an existing path is a missing local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    model: Any  # mlx.nn.Module (a mlx_lm model)
    tokenizer: Any  # mlx_lm.tokenizer_utils.TokenizerWrapper
    name: str  # what records call the model: the configured id/path, or the embedded model's name
    path: Path  # the local model directory
    adapter: str | None = None  # what records call the adapters it was loaded with (adapter_label)
    chat_template_args: dict = field(default_factory=dict)  # passed to the chat template at every prompt

    @property
    def provenance(self) -> dict[str, str]:
        """The row fields that say which student wrote a row (no adapter field without adapters)."""
        return {"student_model": self.name, **({"student_adapter": self.adapter} if self.adapter else {})}


# Code is asked for directly: a reasoning model thinking first would spend max_new_tokens before
# any code (mlx-lm turns thinking on for every vocabulary with <think>). `model.chat_template_args`
# turns it back on; templates without the variable ignore it.
DEFAULT_CHAT_TEMPLATE_ARGS = {"enable_thinking": False}


def load_model(
    base_model: str | None,
    adapter_path: str | None = None,
    chat_template_args: Mapping[str, Any] | None = None,
    keep_quantized: bool | None = None,
) -> LoadedModel:
    """Load `base_model` (None: the embedded SmolLM2) and, if given, LoRA adapters in mlx-lm's format.
    `chat_template_args` go to its chat template, over DEFAULT_CHAT_TEMPLATE_ARGS; `keep_quantized`
    as `device.fit_to_device` takes it.

    Raises RfaiError with one line for a missing path, an unreachable/unknown Hub id, a directory
    that is not a model, or adapters that do not fit the model.
    """
    import mlx.core as mx
    from mlx_lm.utils import load_model as mlx_load_model
    from mlx_lm.utils import load_tokenizer

    if base_model is None:
        path, name = embedded.embedded_model_dir(), embedded.MODEL_NAME
    else:
        path, name = resolve_model_path(base_model), base_model
    if not (path / "config.json").is_file():
        raise RfaiError(f"model {name!r}: {path} is not an mlx-lm model directory (no config.json)")
    try:
        model, config = mlx_load_model(path, lazy=True)
        tokenizer = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    except (OSError, ValueError, KeyError) as exc:
        raise RfaiError(f"model {name!r}: cannot load {path}: {first_line(exc)}") from None
    fit_to_device(model, keep_quantized)
    adapter = None
    if adapter_path is not None:
        apply_adapters(model, adapter_path)
        fit_to_device(model, keep_quantized)
        adapter = adapter_label(adapter_path)
    mx.eval(model.parameters())
    model.eval()
    arguments = {**DEFAULT_CHAT_TEMPLATE_ARGS, **(chat_template_args or {})}
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, path=path, adapter=adapter, chat_template_args=arguments
    )


def adapter_label(adapter_path: str) -> str:
    """`PATH@HASH`: the adapter directory as given, and the first 12 hex digits of its weights'
    SHA-256, so two adapters saved to one path (a later checkpoint) are told apart."""
    digest = hashlib.sha256()
    with open(Path(adapter_path).expanduser() / "adapters.safetensors", "rb") as weights:
        for chunk in iter(lambda: weights.read(1 << 20), b""):
            digest.update(chunk)
    return f"{adapter_path}@{digest.hexdigest()[:12]}"


def resolve_model_path(base_model: str) -> Path:
    """A local directory for `base_model`: the path itself, or a Hub snapshot (download or cache)."""
    local = Path(base_model).expanduser()
    if local.exists():
        return local
    if not _HUB_ID.match(base_model):
        raise RfaiError(f"model {base_model!r}: no such file or directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

    try:
        return Path(snapshot_download(base_model, allow_patterns=DEFAULT_ALLOW_PATTERNS))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise RfaiError(
            f"model {base_model!r}: not a local path, and the Hugging Face Hub cannot provide it "
            f"(offline, or an unknown id): {first_line(exc)}"
        ) from None


def apply_adapters(model, adapter_path: str) -> None:
    """Wrap the model's layers with LoRA and load the weights of an mlx-lm adapter directory."""
    from mlx_lm.utils import load_adapters

    directory = Path(adapter_path).expanduser()
    for required in ("adapter_config.json", "adapters.safetensors"):
        if not (directory / required).is_file():
            raise RfaiError(f"adapter_path {adapter_path!r}: {required} not found (expected mlx-lm's adapter format)")
    try:
        load_adapters(model, str(directory))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RfaiError(f"adapter_path {adapter_path!r}: does not fit the model: {_mismatch(exc)}") from None


def _mismatch(exc: Exception) -> str:
    """mlx-lm's message in one line: its first line lists nothing, the tensor names follow it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{len(lines) - 1} tensors, e.g. {first_line(lines[1], limit=300)}"
    return first_line(exc)
