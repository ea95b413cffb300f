"""Build a tiny random-weight llama model directory that mlx-lm (and mlx_lm.server) load like any other.

Tests use it where the model's quality does not matter, only that the real loading, batching,
log-prob and serving paths run: it loads in milliseconds and decodes hundreds of tokens a second.
"""

from __future__ import annotations

import json
from pathlib import Path

# A ChatML template, the same shape as SmolLM2's, so chat formatting is exercised for real.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# A Qwen3-shaped template: thinking unless `enable_thinking` is false, when the think block comes
# closed and empty. Here the generation prompt opens the block, as reasoning models' templates do.
THINKING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}"
    "{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)
THINK_TOKENS = ["<think>", "</think>"]
_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Write a Python function that reverses a string.",
    "```python\nprint('hello world')\n```",
    "for i in range(10):\n    total += i * i\n",
    "#include <vector>\nint main() { return 0; }\n",
    'fn main() { println!("{}", 1 + 2); }\n',
    "The quick brown fox jumps over the lazy dog. 0123456789",
]


def build_tokenizer(directory: Path, *, thinking: bool = False) -> int:
    """Train a small byte-level BPE on a fixed corpus; returns the vocabulary size. `thinking`:
    with <think> tokens and THINKING_TEMPLATE, as a Qwen3 tokenizer has."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS + (THINK_TOKENS if thinking else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "add_bos_token": False,
                "chat_template": THINKING_TEMPLATE if thinking else CHAT_TEMPLATE,
                "model_max_length": 2048,
            }
        )
    )
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    )
    return tokenizer.get_vocab_size()


def build_tiny_model(
    directory: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2, thinking: bool = False
) -> Path:
    """Write config.json, model.safetensors and tokenizer files for a random llama into `directory`."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(directory, thinking=thinking)
    config = {
        "model_type": "llama",
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "intermediate_size": hidden_size * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(directory / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return directory
