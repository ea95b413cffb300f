"""The rollout seam that `collect` and `train` share: from prompt tasks to scored samples and rows.

    with open_rollout(config, on_notice=warn) as rollout:          # student, teacher, scorer, judge rule
        sampled = rollout.sample(batch)                             # references + G samples per task
        scored = rollout.score(sampled, provenance)                 # ScoreResults and dataset rows

`sample` keeps each sample's token ids and log-probs (what a policy-gradient step needs) and runs
on the caller's thread (MLX); `score` may run on another thread while the next batch samples.
`open_rollout` takes an already-loaded student (`train` keeps its own, with LoRA) or loads
`model.base_model`. This module owns the judge rule (the teacher judges when `teacher.judge` is
on) and how a task becomes the row the scorer reads.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

from .config import Config
from .data.prompts import PromptTask
from .records import STUDENT, TEACHER, new_record

Batch = Sequence[tuple[PromptTask, list[int]]]  # (task, the sample indices wanted for it)


@dataclass
class SampledBatch:
    batch: Batch
    references: list[Any]  # one TeacherAnswer per task
    samples: list[list[Any]]  # per task, one engine Sample (text, token ids, log-probs) per wanted index


@dataclass
class ScoredBatch:
    sampled: SampledBatch
    results: list[Any]  # one ScoreResult per task
    rows: list[dict] = field(default_factory=list)  # in task, then sample order
    provenance: dict = field(default_factory=dict)

    @property
    def rewards(self) -> list[list[float | None]]:
        """Each task's student rewards, in sample order (None: no teacher score, see rubric.py)."""
        return [list(result.rewards) for result in self.results]

    def teacher_row(self, k: int) -> dict:
        """Task k's teacher answer as one more sample of its group (`sample_source: teacher`,
        the next sample index): its code and score in the student fields."""
        from .scoring import fill_teacher_sample

        (task, indices), reference = self.sampled.batch[k], self.sampled.references[k]
        record = new_record(
            prompt=task.prompt, language=task.language, student_code=reference.code, teacher_code=reference.code
        )
        fill_teacher_sample(record, self.results[k])
        return _add_provenance(record, task, reference, len(indices), TEACHER, self.provenance)


@dataclass
class Rollout:
    """What one run samples and scores with; built by `open_rollout`."""

    config: Config
    student: Any  # engine LoadedModel
    teacher: Any  # teachers.Teacher
    scorer: Any  # scoring.Scorer
    sampling: Any  # engine SamplingSettings
    notice: Callable[[str], None] = lambda _message: None
    written: dict = field(default_factory=dict)  # (prompt, language) -> WrittenTests, for tasks without tests
    reported: set = field(default_factory=set)  # tasks whose failing reference solution was reported
    warned_thinking: bool = False

    def sample(self, batch: Batch) -> SampledBatch:
        """The teacher's reference for each task and len(indices) student samples of it, decoded
        together. A task without tests gets the teacher's, when `teacher.write_tests` is on."""
        from .engine.generation import chat_prompt, generate_samples

        references = self.teacher.references(
            [(task.prompt, task.language, task.canonical_solution) for task, _ in batch]
        )
        if self.config.teacher.write_tests:
            batch = self._with_written_tests(batch, references)
        student = self.student
        prompts = [
            chat_prompt(student.tokenizer, task.prompt, task.language, student.chat_template_args) for task, _ in batch
        ]
        wanted = [len(indices) for _, indices in batch]
        generated = generate_samples(self.student, prompts, max(wanted), self.sampling)
        samples = [group[:count] for group, count in zip(generated, wanted)]
        self._notice_unclosed_thinking(prompts, samples)
        return SampledBatch(batch, list(references), samples)

    def _notice_unclosed_thinking(self, prompts: list[str], samples: list[list[Any]]) -> None:
        """Once a run: most samples cut off while the model was still thinking score 0 and teach nothing."""
        from .engine.generation import ends_thinking

        if self.warned_thinking:
            return
        tokenizer = self.student.tokenizer
        flags = [ends_thinking(tokenizer, prompt, s.text) for prompt, group in zip(prompts, samples) for s in group]
        if flags and sum(flags) > len(flags) / 2:
            self.warned_thinking = True
            self.notice(
                f"{sum(flags)} of {len(flags)} samples ended inside an unclosed {tokenizer.think_start} block: "
                f"the model spent training.max_new_tokens ({self.sampling.max_new_tokens}) thinking before any code. "
                "Keep thinking off (model.chat_template_args: {enable_thinking: false}, the default) or raise "
                "training.max_new_tokens"
            )

    def score(self, sampled: SampledBatch, provenance: dict) -> ScoredBatch:
        """Score students and teacher alike, and build the dataset rows. `provenance` holds the
        fields every row of the run shares (split, models, run_id). A task whose own reference
        solution fails its tests is reported once."""
        from .scoring import ScoreItem, extract_code, fill_record

        items = [
            ScoreItem(task_row(task), [sample.text for sample in samples], reference.code or None)
            for (task, _), samples, reference in zip(sampled.batch, sampled.samples, sampled.references)
        ]
        results = self.scorer.score_many(items)
        scored = ScoredBatch(sampled, results, provenance=provenance)
        for (task, indices), samples, reference, result in zip(
            sampled.batch, sampled.samples, sampled.references, results
        ):
            for position, (index, sample) in enumerate(zip(indices, samples)):
                record = new_record(
                    prompt=task.prompt,
                    language=task.language,
                    student_code=extract_code(sample.text, task.language),
                    teacher_code=reference.code,
                )
                fill_record(record, result, position)
                scored.rows.append(
                    self._tests_source(_add_provenance(record, task, reference, index, STUDENT, provenance))
                )
        for message in _failing_reference_notices(scored.rows, self.reported):
            self.notice(message)
        return scored

    def _with_written_tests(self, batch: Batch, references: Sequence[Any]) -> list:
        """The batch with the teacher's checked tests on each task that has none (written once per
        prompt: the answer is cached, the check remembered)."""
        from .scoring.written_tests import WrittenTests, check_tests, parse_tests

        asked = [
            (task, reference)
            for (task, _), reference in zip(batch, references)
            if not task.tests and (task.prompt, task.language) not in self.written
        ]
        with_code = [(task, reference) for task, reference in asked if reference.code.strip()]
        answers = self.teacher.tests_answers([(t.prompt, t.language, r.code) for t, r in with_code])
        for (task, reference), (text, error) in zip(with_code, answers):
            cases = parse_tests(text, task.language) if error is None else []
            checked = check_tests(self.scorer, task.language, cases, reference.code, task.entry_point)
            self._remember(task, WrittenTests([], f"the teacher gave no tests: {error}") if error else checked)
        for task, reference in asked:
            if not reference.code.strip():
                self._remember(task, WrittenTests([], "no teacher solution to check tests against"))
        return [
            (replace(task, tests=self.written[(task.prompt, task.language)].cases) if not task.tests else task, indices)
            for task, indices in batch
        ]

    def _remember(self, task: PromptTask, written: Any) -> None:
        self.written[(task.prompt, task.language)] = written
        if written.reason:
            self.notice(f"task {task.task_id}: no usable tests ({written.reason}); scored without tests")

    def _tests_source(self, record: dict) -> dict:
        """Names where a row's tests came from when the teacher was asked for them."""
        written = self.written.get((record["prompt"], record["language"]))
        if written is not None:
            record["score_sources"]["tests"] = "teacher" if written.cases else f"none: {written.reason}"
        return record


@contextmanager
def open_rollout(
    config: Config,
    *,
    student: Any = None,
    tasks: Sequence[PromptTask] = (),
    on_notice: Callable[[str], None] | None = None,
) -> Iterator[Rollout]:
    """Build the student (unless given), the teacher, the scorer and its judge; seed sampling
    from `training.seed`. `tasks` lets the teacher warn, once, when it will be weak for them.
    A missing teacher API key fails here, before any generation."""
    from .engine.generation import SamplingSettings, seed_sampling
    from .engine.loading import load_model
    from .teachers import build_teacher
    from .teachers.build import weak_teacher_notice

    notice = on_notice or (lambda _message: None)
    if student is None:
        student = load_model(
            config.model.base_model,
            config.model.adapter_path,
            config.model.chat_template_args,
            config.model.keep_quantized,
        )
    seed_sampling(config.training.seed)
    teacher = build_teacher(config, student)
    weak = weak_teacher_notice(teacher, list(tasks))
    if weak:
        notice(weak)
    with teacher, build_scorer(config, teacher, on_notice=notice) as scorer:
        yield Rollout(config, student, teacher, scorer, SamplingSettings.from_config(config.training), notice)


def build_scorer(config: Config, teacher: Any = None, *, on_notice: Callable[[str], None] | None = None):
    """The scorer, with the one judge rule: the teacher judges only when `teacher.judge` is on."""
    from .scoring import Scorer

    judge = teacher if teacher is not None and teacher.judge_enabled else None
    return Scorer(config.scoring, judge=judge, on_notice=on_notice)


def _add_provenance(record: dict, task: PromptTask, reference: Any, index: int, source: str, provenance: dict) -> dict:
    """A row's fields that come from its task, its teacher, who wrote it and the run (`provenance`)."""
    record.update(
        provenance,
        task_id=task.task_id,
        sample_index=index,
        sample_source=source,
        tests=task.tests or None,
        entry_point=task.entry_point,
        teacher_model=reference.model or provenance["teacher_model"],
    )
    if reference.error:
        record["score_sources"]["teacher"] = {"reference": f"fallback: {reference.error}"}
    return record


def task_row(task: PromptTask) -> dict:
    """The prompt row the scorer reads: prompt, language, tests and entry point."""
    return {"prompt": task.prompt, "language": task.language, "tests": task.tests, "entry_point": task.entry_point}


def _failing_reference_notices(rows: Sequence[dict], reported: set[str]) -> list[str]:
    """One warning per task whose own reference solution fails its tests (each task once: `reported`)."""
    from .teachers.teacher import KNOWN_SOLUTION

    messages = []
    for row in rows:
        results = (row.get("test_results") or {}).get("teacher") or {}
        if row.get("teacher_model") != KNOWN_SOLUTION or row["task_id"] in reported:
            continue
        if results.get("passed", 0) < results.get("total", 0):
            reported.add(row["task_id"])
            messages.append(
                f"task {row['task_id']}: its reference solution passes {results['passed']} of "
                f"{results['total']} of its own tests ({results.get('reason', 'no reason given')})"
            )
    return messages
