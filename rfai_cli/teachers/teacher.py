"""The Teacher: reference solutions and rubric judgements from any provider, cached on disk.

Batch calls (`references`, `judge_many`) send every cache miss to the provider at once, so
HTTP providers keep `max_concurrency` requests in flight and the MLX provider decodes them in
one batch. A judge answer that does not parse is asked for once more, with the problem named;
if that fails too (or the provider never answered) the verdict is a `fallback` carrying the
reason, and the scorer uses its other sources instead of inventing a score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

from ..scoring.judge import JudgeVerdict
from .base import Backend, Chat, Sampling
from .cache import AnswerCache, cache_key
from .degenerate import degenerate_reason
from .errors import TeacherError
from .prompts import VerdictError, judge_chat, parse_verdict, reference_chat, repair_chat, tests_chat

# Where an answer came from (judge verdicts use the words of the record's `score_sources`).
REFERENCE = "teacher"
KNOWN_SOLUTION = "reference"  # the task's own reference solution; also the rows' teacher_model then
JUDGE = "judge"
CACHE = "cache"
FALLBACK = "fallback"
JUDGE_MAX_TOKENS = 128  # the verdict is ~40 tokens of JSON


@dataclass(frozen=True)
class TeacherAnswer:
    """A reference solution: the teacher's whole answer and the code extracted from it."""

    text: str
    code: str
    source: str  # "reference", "teacher", "cache" or "fallback" (then `error` says why and `code` is empty)
    error: str | None = None
    model: str = ""  # who answered: the teacher's model, or "reference" for a task's own solution

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TeacherVerdict(JudgeVerdict):
    """The scorer's JudgeVerdict, saying also where it came from: "judge", "cache" or "fallback"
    (then `scores` is empty and `fallback` holds the reason)."""

    source: str = JUDGE


@dataclass(frozen=True)
class JudgeItem:
    prompt: str
    code: str
    language: str


@dataclass
class _Reply:
    text: str | None
    cached: bool = False
    error: str | None = None


NO_MODEL = "the task has no reference solution and teacher.provider is 'reference' (no model to ask)"


@dataclass
class Teacher:
    backend: Backend | None  # None: teacher.provider reference, only tasks' own solutions
    model: str  # recorded as the rows' `teacher_model`
    extract_code: Callable[[str, str], str]  # (answer text, language) -> code
    cache: AnswerCache | None = None
    sampling: Sampling = field(default_factory=Sampling)
    judge_enabled: bool = True  # teacher.judge: callers pass the teacher to the Scorer as its judge only when set
    use_known_solutions: bool = False  # teacher.provider auto/reference: a task's own solution comes first

    @property
    def judge_sampling(self) -> Sampling:
        # A verdict is a short JSON object: no need to let the judge run on for a whole solution.
        return replace(self.sampling, max_tokens=min(self.sampling.max_tokens, JUDGE_MAX_TOKENS))

    # --- references -------------------------------------------------------------------------
    def reference(self, prompt: str, language: str, solution: str | None = None) -> TeacherAnswer:
        return self.references([(prompt, language, solution)])[0]

    def references(self, tasks: Sequence[tuple[str, str] | tuple[str, str, str | None]]) -> list[TeacherAnswer]:
        """One reference solution per (prompt, language[, known solution]); failures, and degenerate
        answers (a repetition loop, code cut off at max_tokens), are answers with `error` set."""
        answers: list[TeacherAnswer | None] = [None] * len(tasks)
        asked: list[int] = []
        for index, (_prompt, _language, *known) in enumerate(tasks):
            solution = known[0] if known else None
            if self.use_known_solutions and solution and solution.strip():
                answers[index] = TeacherAnswer(solution, solution, KNOWN_SOLUTION, model=KNOWN_SOLUTION)
            else:
                asked.append(index)
        replies = self._complete([reference_chat(tasks[i][0], tasks[i][1]) for i in asked], self.sampling)
        for index, reply in zip(asked, replies):
            answers[index] = self._answer(reply, tasks[index][1])
        return answers  # type: ignore[return-value]

    def _answer(self, reply: _Reply, language: str) -> TeacherAnswer:
        if reply.error is not None:
            return TeacherAnswer(text="", code="", source=FALLBACK, error=reply.error, model=self.model)
        problem = degenerate_reason(reply.text)
        if problem is not None:  # kept for inspection, never scored as a reference
            return TeacherAnswer(reply.text, "", FALLBACK, error=f"degenerate answer: {problem}", model=self.model)
        source = CACHE if reply.cached else REFERENCE
        return TeacherAnswer(reply.text, self.extract_code(reply.text, language), source, model=self.model)

    # --- tests for tasks without them ------------------------------------------------------
    def tests_answers(self, tasks: Sequence[tuple[str, str, str]]) -> list[tuple[str, str | None]]:
        """(answer text, error) per (prompt, language, reference code): the teacher's unit tests,
        unparsed (scoring/written_tests.py reads and checks them)."""
        replies = self._complete([tests_chat(*task) for task in tasks], self.sampling)
        return [(reply.text or "", reply.error) for reply in replies]

    # --- judging ----------------------------------------------------------------------------
    def judge(self, prompt: str, code: str, language: str) -> TeacherVerdict:
        """The scorer's Judge protocol: never raises for a bad or missing answer."""
        return self.judge_many([JudgeItem(prompt, code, language)])[0]

    def judge_many(self, items: Sequence[JudgeItem]) -> list[TeacherVerdict]:
        chats = [judge_chat(item.prompt, item.code, item.language) for item in items]
        verdicts: list[TeacherVerdict | None] = [None] * len(items)
        retry: list[tuple[int, Chat]] = []
        for index, (chat, reply) in enumerate(zip(chats, self._complete(chats, self.judge_sampling))):
            verdicts[index], problem = _read_verdict(reply)
            if problem is not None:
                retry.append((index, repair_chat(chat, reply.text, problem)))
        # One more try for each unparsable answer, all together.
        for (index, _), reply in zip(retry, self._complete([chat for _, chat in retry], self.judge_sampling)):
            verdict, problem = _read_verdict(reply)
            verdicts[index] = verdict or _fallback(f"unparsable judge answer, twice: {problem}")
        return verdicts  # type: ignore[return-value]

    # --- the cache in front of the provider -------------------------------------------------
    def _complete(self, chats: list[Chat], sampling: Sampling) -> list[_Reply]:
        if not chats:
            return []
        identity = self.backend.identity() if self.backend is not None else {"provider": KNOWN_SOLUTION}
        keys = [cache_key(identity, chat, asdict(sampling)) for chat in chats]
        replies: list[_Reply | None] = [None] * len(chats)
        missing: dict[str, list[int]] = {}  # identical requests in one batch are sent once
        for index, key in enumerate(keys):
            text = self.cache.get(key) if self.cache else None
            if text is not None:
                replies[index] = _Reply(text, cached=True)
            else:
                missing.setdefault(key, []).append(index)
        if missing and self.backend is None:
            for indices in missing.values():
                for i in indices:
                    replies[i] = _Reply(None, error=NO_MODEL)
        elif missing:
            first = [indices[0] for indices in missing.values()]
            answers = self.backend.complete_all([chats[i] for i in first], sampling)
            for (key, indices), answer in zip(missing.items(), answers):
                if isinstance(answer, TeacherError):
                    reply = _Reply(None, error=str(answer))
                else:
                    if self.cache:
                        self.cache.put(key, answer, identity)
                    reply = _Reply(answer)
                for i in indices:
                    replies[i] = reply
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def __enter__(self) -> "Teacher":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_verdict(reply: _Reply) -> tuple[TeacherVerdict | None, str | None]:
    """(verdict, None), or (None, what is wrong with the answer) when it is worth asking again."""
    if reply.error is not None:
        return _fallback(reply.error), None
    try:
        return TeacherVerdict(parse_verdict(reply.text), source=CACHE if reply.cached else JUDGE), None
    except VerdictError as exc:
        return None, str(exc)


def _fallback(reason: str) -> TeacherVerdict:
    return TeacherVerdict({}, fallback=reason, source=FALLBACK)
