"""Batched sampling: G completions per prompt, several prompts at once, one shared prefill per prompt.

Each prompt is prefilled once into its own KV cache; mlx-lm's `BatchGenerator` then starts all
n * len(prompts) sequences from copies of those caches and decodes them together, one model call
per token for the whole batch. Token ids and per-token log-probs are kept for training.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import RfaiError
from .loading import LoadedModel
from .sampling import make_sampler

Messages = Sequence[dict]  # chat messages: [{"role": ..., "content": ...}, ...]

# One decode at a time in the process: the student's generation and a local teacher's (called from
# the scorer's worker threads) may share one model, and LoRA is switched off in place for the
# teacher, so they take turns. Re-entrant so a caller can hold it around several calls.
GENERATION_LOCK = threading.RLock()

_DISPLAY_NAMES = {
    "python": "Python",
    "cpp": "C++",
    "c": "C",
    "rust": "Rust",
    "go": "Go",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "java": "Java",
    "csharp": "C#",
}

_SYSTEM_PROMPT = (
    "You are an expert {name} programmer. Answer with one complete, correct and efficient {name} "
    "solution in a single ```{fence} code block. Document it with a docstring or comments. "
    "Do not add explanations outside the code block."
)


@dataclass
class Sample:
    """One completion of a prompt.

    `logprobs[i]` is log p(token_ids[i] | prompt, token_ids[:i]) under the model's own
    distribution (temperature 1, before top-p/top-k), the quantity `completion_logprobs`
    recomputes. When `finish_reason` is "stop", the last token is the end-of-sequence token:
    it is kept in `token_ids` (the policy chose to stop) but not in `text`. "block" means the
    sample ended where its first fenced code block closed (see SamplingSettings).
    """

    text: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" (end-of-sequence token), "block" (code block closed) or "length"


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float  # 0 = greedy
    top_p: float  # 1 = off
    top_k: int  # 0 = off
    max_new_tokens: int
    # Every prompt asks for one fenced code block, and the code is all that gets scored: stop a
    # sample once that block closes instead of paying for whatever a small model rambles on with.
    stop_after_code_block: bool = True

    @classmethod
    def from_config(cls, training: Any) -> "SamplingSettings":
        """From the `training` section of the config (rfai_cli.config.TrainingSettings)."""
        return cls(training.generation_temperature, training.top_p, training.top_k, training.max_new_tokens)


def seed_sampling(seed: int) -> None:
    """Make every sample drawn from here on reproducible: the same seed, prompts and batches give
    the same tokens (MLX's random state is global, shared by the student and an mlx teacher)."""
    import mlx.core as mx

    mx.random.seed(seed)


def system_prompt(language: str) -> str:
    """The system prompt for code in `language` (a normalised name such as `python` or `cpp`)."""
    name = _DISPLAY_NAMES.get(language, language.capitalize())
    return _SYSTEM_PROMPT.format(name=name, fence=language)


def chat_prompt(tokenizer: Any, prompt: str, language: str, template_args: Mapping[str, Any] | None = None) -> str:
    """`prompt` formatted with the model's chat template (given `template_args`), the language's
    system prompt and the assistant turn opened (see `fit_chat` for templates without a system
    role, or none)."""
    chat = fit_chat(
        tokenizer,
        [{"role": "system", "content": system_prompt(language)}, {"role": "user", "content": prompt}],
        template_args,
    )
    return chat if isinstance(chat, str) else _apply_template(tokenizer, chat, template_args)


def fit_chat(tokenizer: Any, chat: Messages, template_args: Mapping[str, Any] | None = None) -> list | str:
    """The chat as the model's template can take it: templates without a system role get the
    system text at the top of the first user turn; a model without a template gets plain text."""
    from jinja2.exceptions import TemplateError

    if getattr(tokenizer, "chat_template", None) is None:
        return "\n\n".join(m["content"] for m in chat) + "\n"
    try:
        _apply_template(tokenizer, list(chat), template_args)
        return list(chat)
    except TemplateError:
        system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
        turns = [dict(m) for m in chat if m["role"] != "system"]
        turns[0]["content"] = f"{system}\n\n{turns[0]['content']}"
        return turns


def ends_thinking(tokenizer: Any, prompt: str, text: str) -> bool:
    """Whether `text`, generated after `prompt`, stops inside a think block it (or the prompt's
    last characters, where a template opens one) opened and never closed."""
    start, end = getattr(tokenizer, "think_start", None), getattr(tokenizer, "think_end", None)
    if not (isinstance(start, str) and isinstance(end, str)):
        return False
    both = prompt[-(len(start) + len(end) + 16) :] + text
    return both.rfind(start) > both.rfind(end)


def encode_prompt(tokenizer: Any, prompt: str | Messages, template_args: Mapping[str, Any] | None = None) -> list[int]:
    """Token ids of a chat-formatted prompt string, or of chat messages (template applied)."""
    text = prompt if isinstance(prompt, str) else _apply_template(tokenizer, list(prompt), template_args)
    # A formatted prompt usually carries the BOS token already; do not add a second one.
    bos = tokenizer.bos_token
    ids = tokenizer.encode(text, add_special_tokens=bos is None or not text.startswith(bos))
    if not ids:
        raise RfaiError("cannot generate from an empty prompt")
    return ids


def generate_samples(
    loaded: LoadedModel,
    prompts: Sequence[str | Messages],
    n: int,
    settings: SamplingSettings,
    on_progress: Callable[[int], None] | None = None,
) -> list[list[Sample]]:
    """`n` samples for each prompt (a chat-formatted string or chat messages), decoded in one batch.

    All n * len(prompts) sequences are decoded at once, so pass a batch of prompts (the
    training batch), not a whole dataset. Returns one list of `n` Samples per prompt, in order. `on_progress(k)` is called after each
    decoding step with the number of tokens that step produced.
    """
    from mlx_lm.generate import BatchGenerator

    if n < 1:
        raise ValueError("n must be at least 1")
    model, tokenizer = loaded.model, loaded.tokenizer
    prompt_ids = [encode_prompt(tokenizer, prompt, loaded.chat_template_args) for prompt in prompts]
    if not prompt_ids:
        return []
    # All but the last prompt token go into a cache per prompt; BatchGenerator merges n
    # references to it into the batch cache (copying, never mutating it) and feeds the last token.
    width = n * len(prompt_ids)
    with GENERATION_LOCK:
        caches = [_prefill(model, ids[:-1]) for ids in prompt_ids]
        generator = BatchGenerator(
            model,
            max_tokens=settings.max_new_tokens,
            stop_tokens=[[token] for token in tokenizer.eos_token_ids],
            sampler=make_sampler(settings.temperature, top_p=settings.top_p, top_k=settings.top_k),
            completion_batch_size=width,
            prefill_batch_size=width,
        )
        try:
            uids = generator.insert(
                [ids[-1:] for ids in prompt_ids for _ in range(n)],
                caches=[cache for cache in caches for _ in range(n)],
            )
            block_end = _BlockEnd(tokenizer) if settings.stop_after_code_block else None
            tokens, logprobs, finished = _decode(generator, uids, on_progress, block_end)
        finally:
            generator.close()

    samples = []
    for index, uid in enumerate(uids):
        ids, reason = tokens[uid], finished[uid]
        text = tokenizer.decode(ids[:-1] if reason == "stop" else ids)
        samples.append(Sample(text, prompt_ids[index // n], ids, logprobs[uid], reason))
    return [samples[start : start + n] for start in range(0, width, n)]


def _prefill(model: Any, ids: list[int]) -> list:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    if ids:
        model(mx.array(ids)[None], cache=cache)
        mx.eval([c.state for c in cache])
    return cache


FENCE = "```"


class _BlockEnd:
    """Tells when a sample's text holds a complete fenced block (two fences).

    Only tokens containing a backtick can complete one, so the sample is decoded just then.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._has_tick: dict[int, bool] = {}

    def reached(self, token: int, tokens: list[int]) -> bool:
        tick = self._has_tick.get(token)
        if tick is None:
            tick = self._has_tick[token] = "`" in self.tokenizer.decode([token])
        return tick and self.tokenizer.decode(tokens).count(FENCE) >= 2


def _decode(generator: Any, uids: list[int], on_progress: Callable[[int], None] | None, block_end: _BlockEnd | None):
    import mlx.core as mx

    tokens: dict[int, list[int]] = {uid: [] for uid in uids}
    logprobs: dict[int, list[float]] = {uid: [] for uid in uids}
    finished: dict[int, str] = {}
    while responses := generator.next_generated():
        # One evaluation per step for the chosen tokens' log-probs, not one per sequence.
        chosen = mx.stack([r.logprobs[r.token] for r in responses]).tolist()
        closed = []
        for response, logprob in zip(responses, chosen):
            tokens[response.uid].append(response.token)
            logprobs[response.uid].append(logprob)
            if response.finish_reason is not None:
                finished[response.uid] = response.finish_reason
            elif block_end is not None and block_end.reached(response.token, tokens[response.uid]):
                finished[response.uid] = "block"
                closed.append(response.uid)
        if closed:
            generator.remove(closed)
        if on_progress is not None:
            on_progress(len(responses))
    return tokens, logprobs, finished


def _apply_template(tokenizer: Any, messages: list, template_args: Mapping[str, Any] | None) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **(template_args or {}))
