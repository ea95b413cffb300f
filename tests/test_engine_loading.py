"""Model loading: local paths, adapters in mlx-lm's format, LoRA switched off, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.device import on_cpu
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import padded_completion_logprobs
from rfai_cli.engine.lora import lora_disabled, lora_layers
from rfai_cli.errors import RfaiError

REPO = Path(__file__).resolve().parent.parent
PROMPT, COMPLETION = [[5, 9, 11, 40, 41]], [[12, 13, 14]]


def write_adapters(model_dir: Path, directory: Path, num_layers: int = 2) -> Path:
    """LoRA adapters as mlx-lm's trainer saves them, with non-zero lora_b so they change outputs."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model = load_model(str(model_dir)).model
    lora = {"rank": 4, "scale": 2.0, "dropout": 0.0}
    linear_to_lora_layers(model, num_layers, lora)
    mx.random.seed(1)
    weights = {
        name: mx.random.normal(value.shape) * 0.5
        for name, value in tree_flatten(model.trainable_parameters())
        if name.endswith(("lora_a", "lora_b"))
    }
    directory.mkdir(parents=True)
    mx.save_safetensors(str(directory / "adapters.safetensors"), weights)
    config = {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": lora}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return directory


def test_local_model_loads_in_float32_on_cpu(tiny_model_dir):
    import mlx.core as mx
    from mlx.utils import tree_flatten

    loaded = load_model(str(tiny_model_dir))
    assert loaded.name == str(tiny_model_dir) and loaded.path == tiny_model_dir
    dtypes = {value.dtype for _, value in tree_flatten(loaded.model.parameters())}
    assert dtypes == ({mx.float32} if on_cpu() else dtypes)
    assert loaded.tokenizer.encode("def add(a, b):")


def quantized_copy(tiny_model_dir, directory):
    """The tiny model saved 4-bit, and its logits for PROMPT as quantized."""
    import mlx.core as mx
    from mlx_lm.utils import quantize_model, save

    source = load_model(str(tiny_model_dir))
    config = json.loads((tiny_model_dir / "config.json").read_text())
    model, config = quantize_model(source.model, config, group_size=32, bits=4)
    logits = model(mx.array(PROMPT))
    mx.eval(logits)
    save(directory, tiny_model_dir, model, source.tokenizer._tokenizer, config)
    return directory, logits


def test_keep_quantized_trains_lora_on_the_quantized_base(tiny_model_dir, tmp_path, rfai):
    """model.keep_quantized: QLoRA as mlx-lm does it, on CPU too: the base stays 4-bit, a train step
    moves the adapters, and mlx-lm loads them on the quantized base."""
    import subprocess
    import sys

    import mlx.core as mx
    import mlx.nn as nn

    q4, quantized_logits = quantized_copy(tiny_model_dir, tmp_path / "q4")
    kept = load_model(str(q4), keep_quantized=True)
    assert any(isinstance(m, nn.QuantizedLinear) for m in kept.model.modules())
    assert mx.allclose(kept.model(mx.array(PROMPT)), quantized_logits, atol=1e-4).item()
    config = (
        f"model:\n  base_model: {q4}\n  keep_quantized: true\nteacher:\n  max_tokens: 16\ntraining:\n"
        "  max_new_tokens: 8\n  batch_size: 2\n  num_samples_per_prompt: 2\n  max_steps: 1\n  eval_steps: 0\n"
        "  eval_limit: 1\n  eval_samples: 1\n  learning_rate: 0.01\n  warmup_steps: 0\n"
    )
    (tmp_path / "config.yaml").write_text(config)
    result = rfai("train")
    assert result.returncode == 0, result.stderr
    script = "import sys; from mlx_lm.utils import load; load(sys.argv[1], adapter_path=sys.argv[2])"
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(q4), str(tmp_path / "checkpoints")], capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    run = json.loads((tmp_path / "datasets" / "run.json").read_text())["runs"][-1]
    assert run["fingerprint"]["keep_quantized"] is True


def test_quantized_model_is_dequantized_to_float32_on_cpu(tiny_model_dir, tmp_path):
    import mlx.core as mx
    import mlx.nn as nn

    if not on_cpu():
        pytest.skip("the float32 policy applies to CPU only")
    q4, quantized_logits = quantized_copy(tiny_model_dir, tmp_path / "q4")
    loaded = load_model(str(q4))
    assert not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for m in loaded.model.modules())
    assert mx.allclose(loaded.model(mx.array(PROMPT)), quantized_logits, atol=1e-2).item()


def test_adapters_change_the_model_and_lora_disabled_restores_the_base(tiny_model_dir, tmp_path):
    import mlx.core as mx

    adapters = write_adapters(tiny_model_dir, tmp_path / "adapters")
    base = load_model(str(tiny_model_dir))
    tuned = load_model(str(tiny_model_dir), adapter_path=str(adapters))
    assert len(lora_layers(tuned.model)) > 0

    base_lp, _ = padded_completion_logprobs(base.model, PROMPT, COMPLETION)
    tuned_lp, _ = padded_completion_logprobs(tuned.model, PROMPT, COMPLETION)
    assert not mx.allclose(base_lp, tuned_lp, atol=1e-3).item()
    with lora_disabled(tuned.model):
        reference_lp, _ = padded_completion_logprobs(tuned.model, PROMPT, COMPLETION)
    assert mx.allclose(base_lp, reference_lp, atol=1e-5).item()
    after_lp, _ = padded_completion_logprobs(tuned.model, PROMPT, COMPLETION)
    assert mx.allclose(after_lp, tuned_lp).item()


def test_logprobs_are_differentiable_with_respect_to_lora(tiny_model_dir, tmp_path):
    """The trainer's policy-gradient loss: gradients reach the adapters, not the frozen base."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    tuned = load_model(str(tiny_model_dir), adapter_path=str(write_adapters(tiny_model_dir, tmp_path / "a")))
    model = tuned.model
    model.freeze()
    for layer in lora_layers(model):
        layer.unfreeze(keys=["lora_a", "lora_b"])

    def loss(model):
        logprobs, mask = padded_completion_logprobs(model, PROMPT, COMPLETION)
        return -(logprobs * mask).sum() / mask.sum()

    value, grads = nn.value_and_grad(model, loss)(model)
    flat = dict(tree_flatten(grads))
    assert flat and all(name.endswith(("lora_a", "lora_b")) for name in flat)
    assert value.item() > 0 and any(mx.abs(g).sum().item() > 0 for g in flat.values())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: str(tmp / "missing-model"), "no such file or directory"),
        (lambda tmp: str(tmp), "is not an mlx-lm model directory (no config.json)"),
    ],
)
def test_bad_model_paths_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(RfaiError) as error:
        load_model(make(tmp_path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_adapter_paths_are_one_line_errors(tiny_model_dir, tmp_path):
    with pytest.raises(RfaiError, match="adapter_config.json not found"):
        load_model(str(tiny_model_dir), adapter_path=str(tmp_path))
    wrong = write_adapters(tiny_model_dir, tmp_path / "wrong", num_layers=2)
    (wrong / "adapter_config.json").write_text(
        json.dumps({"num_layers": 2, "lora_parameters": {"rank": 8, "scale": 2.0, "dropout": 0.0}})
    )
    with pytest.raises(RfaiError, match="does not fit the model") as error:
        load_model(str(tiny_model_dir), adapter_path=str(wrong))
    # mlx-lm's first line names no tensor; the one line keeps the names that do not fit
    assert "\n" not in str(error.value) and re.search(r"tensors, e\.g\. .*lora_[ab]", str(error.value)), error.value
    # the tensors that do not fit are named (mlx-lm lists them after its first line)
    assert "tensors, e.g. model.layers." in str(error.value)
    assert "adapter shape" in str(error.value) and "does not match model parameter shape" in str(error.value)


def test_unknown_hub_id_offline_is_a_one_line_error(tmp_path):
    """A Hub id that is not a local path, with the Hub unreachable: one line, no traceback."""
    script = (
        "from rfai_cli.engine.loading import load_model\n"
        "from rfai_cli.errors import RfaiError\n"
        "try:\n    load_model('nobody-xyz/no-such-model')\n"
        "except RfaiError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "model 'nobody-xyz/no-such-model': not a local path, and the Hugging Face Hub cannot provide it"
    )
