"""A local mlx-lm model as the teacher: by default the student's base model with adapters off.

The model is loaded on first use, not when the teacher is built, so a run whose answers are all
in the cache never loads it. Requests are decoded together in batches of `max_concurrency`
sequences, one model call per token for the whole batch. Calls from several threads (the scorer
judges from its worker pool) are coalesced: while one batch decodes, the others queue, and the
next batch takes every queued request at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .base import Chat, Sampling
from .errors import TeacherError


@dataclass
class _Job:
    chats: list[Chat]
    sampling: Sampling
    answers: list[str] | None = None
    error: BaseException | None = None


class MlxBackend:
    def __init__(
        self,
        base_model: str | None,
        batch_size: int,
        loaded: Any = None,
        chat_template_args: dict | None = None,
        keep_quantized: bool | None = None,
    ):
        self.base_model = base_model
        # How a model of its own loads (a shared one came loaded so).
        self.chat_template_args, self.keep_quantized = chat_template_args, keep_quantized
        self.batch_size = batch_size
        self._loaded = loaded  # an engine LoadedModel to share (e.g. the student's, adapters off)
        self.batches_decoded = 0
        self._pending: list[_Job] = []
        self._queue = threading.Lock()
        self._decoding = threading.Lock()  # one generation at a time on this model

    @classmethod
    def from_config(cls, config, student: Any = None) -> "MlxBackend":
        """`student`, an engine LoadedModel, is shared when the teacher is the student's base model."""
        settings = config.teacher
        shares_student = settings.model_name in (None, config.model.base_model)
        return cls(
            settings.model_name or config.model.base_model,
            batch_size=settings.max_concurrency,
            loaded=student if shares_student else None,
            chat_template_args=config.model.chat_template_args,
            keep_quantized=config.model.keep_quantized,
        )

    @property
    def model(self) -> str:
        if self.base_model is not None:
            return self.base_model
        from ..engine.embedded import MODEL_NAME

        return MODEL_NAME

    def identity(self) -> dict[str, Any]:
        return {"provider": "mlx", "model": self.model}

    def complete_all(self, chats: list[Chat], sampling: Sampling) -> list[str | TeacherError]:
        job = _Job(list(chats), sampling)
        with self._queue:
            self._pending.append(job)
        with self._decoding:
            if job.answers is None and job.error is None:  # no earlier batch took it along
                with self._queue:
                    jobs, self._pending = self._pending, []
                self._run(jobs)
        if job.error is not None:
            raise job.error
        return list(job.answers)

    def _run(self, jobs: list[_Job]) -> None:
        """Decode every queued request, batching those that share sampling parameters."""
        from ..engine.generation import GENERATION_LOCK, SamplingSettings, fit_chat, generate_samples
        from ..engine.lora import lora_disabled

        groups: dict[Sampling, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.sampling, []).append(job)
        for sampling, group in groups.items():
            try:
                loaded = self._model()
                settings = SamplingSettings(
                    temperature=sampling.temperature, top_p=1.0, top_k=0, max_new_tokens=sampling.max_tokens
                )
                chats = [
                    fit_chat(loaded.tokenizer, chat, loaded.chat_template_args) for job in group for chat in job.chats
                ]
                texts: list[str] = []
                # The teacher is the base model: adapters off (a no-op for a model without any).
                with GENERATION_LOCK, lora_disabled(loaded.model):
                    for start in range(0, len(chats), self.batch_size):
                        batch = chats[start : start + self.batch_size]
                        texts.extend(samples[0].text for samples in generate_samples(loaded, batch, 1, settings))
                        self.batches_decoded += 1
            except BaseException as exc:  # e.g. a model that does not load: every waiting caller sees it
                for job in group:
                    job.error = exc
                continue
            for job in group:
                job.answers, texts = texts[: len(job.chats)], texts[len(job.chats) :]

    def _model(self):
        if self._loaded is None:
            from ..engine.loading import load_model

            self._loaded = load_model(self.base_model, None, self.chat_template_args, self.keep_quantized)
        return self._loaded

    def close(self) -> None:
        self._loaded = None
