"""The Hugging Face dataset card: DIR/README.md with YAML metadata that `load_dataset(DIR)` follows.

The card is rebuilt from the files on disk each time (row counts, statistics and features come
from the data, not from memory), so running it twice gives the same file apart from the date.
Text between the custom-section markers is carried over from the previous card; a README that
rfai did not write is kept whole inside that section rather than lost.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from .. import yaml_input
from ..errors import InputError
from ..output import write_text
from ..records import SCORE_FIELDS, SPLITS, STDIN, TEACHER, SkipHandler, iter_blocks, parse_line, read_rows
from ..repo_ids import check_repo_id
from .arrow_json import read_json_block
from .layout import CARD_FILE, CURVES_FILE, REWARD_FORMULA, RunInfo, read_run_info, split_files
from .stats import MISSING, compute_stats

if TYPE_CHECKING:
    from ..config import Config

CUSTOM_START = "<!-- rfai:custom:start -->"
CUSTOM_END = "<!-- rfai:custom:end -->"
DEFAULT_LICENSE = "apache-2.0"
_DEFAULT_CUSTOM = "\n<!-- Anything written between these markers is kept when `rfai card` rewrites this file. -->\n"

FIELD_DOCS = {
    "prompt": "the task given to both models",
    "language": "programming language (normalised: `cpp`, `python`, `rust`, ...)",
    "student_code": "code written by the student model",
    "teacher_code": "reference code written by the teacher model",
    "student_score": "rubric score of the student's code, 0..1",
    "teacher_score": "rubric score of the teacher's code, 0..1",
    "reward": REWARD_FORMULA,
    "scoring_breakdown": "the rubric weights the scores were computed with",
    "timestamp": "when the row was written (ISO 8601, UTC)",
    "student_breakdown": "per-criterion scores of the student's code, 0..1",
    "teacher_breakdown": "per-criterion scores of the teacher's code, 0..1",
    "score_sources": "where each criterion's score came from (tests, static, judge, cache, fallback), "
    "and `tests: teacher` when the teacher wrote the tests",
    "test_results": "tests passed / run, for the student and the teacher",
    "split": "train, validation or evaluation",
    "task_id": "identifier of the prompt's task",
    "sample_index": "index of this sample among the student's samples for the prompt",
    "sample_source": "who wrote `student_code`: `student`, or `teacher` for its answer taken as a sample of the group",
    "step": "training step that produced the row",
    "epoch": "training epoch that produced the row",
    "advantage": "the reward normalised within the prompt's group of samples (training rows)",
    "student_model": "the student model",
    "student_adapter": "the LoRA adapters the student was loaded with: their path @ the first 12 hex digits of "
    "their weights' SHA-256 (absent: the base model alone)",
    "teacher_model": "the teacher model",
    "run_id": "the run that produced the row",
    "schema_version": "version of the row schema",
    "tests": "the task's test cases (the teacher's, for a prompt that had none)",
    "entry_point": "name of the function the tests call",
}


# ---------------------------------------------------------------- the files and their features


def infer_features(paths: Iterable[Path]) -> list[dict]:
    """The `dataset_info.features` YAML list for the rows of `paths`, as pyarrow (and so `datasets`) types them.

    Score-like numbers are declared float64 even when a block happens to hold only integers,
    so every block of every split casts to the same features.
    """
    import pyarrow as pa

    schemas = []
    try:
        for path in paths:
            for block in iter_blocks(path):
                try:
                    schemas.append(read_json_block(block).schema)
                except (pa.ArrowException, UnicodeDecodeError):
                    rows = [row for row, _ in map(parse_line, block.split(b"\n")) if row is not None]
                    if rows:
                        schemas.append(pa.Table.from_struct_array(pa.array(rows)).schema)
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, ValueError):
        return []  # no single type per field: leave typing to the loader rather than declare a wrong one
    features = []
    for item in schema:
        kind = item.type
        if item.name in (*SCORE_FIELDS, "advantage") and (pa.types.is_integer(kind) or pa.types.is_null(kind)):
            kind = pa.float64()
        features.append({"name": item.name, **_feature(kind)})
    return features


def _feature(kind) -> dict:
    """One pyarrow type in the datasets YAML feature syntax (`dtype`, `struct`, `list`)."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return {"struct": [{"name": child.name, **_feature(child.type)} for child in kind]}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _feature(kind.value_type)
        return {"list": inner["dtype"] if list(inner) == ["dtype"] else inner.get("struct", inner)}
    if pa.types.is_timestamp(kind):
        return {"dtype": f"timestamp[{kind.unit}]"}
    # pyarrow's names for these differ from datasets' ("double" vs "float64").
    names = {
        pa.string(): "string",
        pa.large_string(): "large_string",
        pa.bool_(): "bool",
        pa.float64(): "float64",
        pa.float32(): "float32",
        pa.float16(): "float16",
    }
    return {"dtype": names.get(kind, str(kind))}


# ---------------------------------------------------------------- the card


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a row count."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "n>1B"


def write_card(
    directory: str | Path,
    *,
    repo_id: str | None = None,
    config: "Config | None" = None,
    license: str | None = None,
    pretty_name: str | None = None,
    on_skip: SkipHandler | None = None,
) -> Path:
    """Write DIR/README.md for the split files in DIR and return its path.

    `repo_id` defaults to the config's `huggingface.dataset_repo_id`. The license is, in order:
    `license`, the license of the card already there, apache-2.0. The title (`pretty_name`) is, in
    order: `pretty_name`, the repo's name, the existing card's, the directory's name.
    """
    directory = Path(directory)
    if str(directory) == STDIN or not directory.exists():
        raise InputError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory (rfai card takes the dataset directory)")
    files = split_files(directory)
    if not files:
        raise InputError(f"{directory}: no split files ({', '.join(f'{s}.jsonl' for s in SPLITS)})")
    _check_one_line(pretty_name, "--pretty-name")
    if license is not None and not _LICENSE_ID.fullmatch(license):
        raise InputError(f"--license must be a license id such as apache-2.0 or cc-by-4.0, got {license!r}")
    if repo_id is not None:
        check_repo_id(repo_id)
    elif config is not None:
        repo_id = config.huggingface.dataset_repo_id  # the config loader has checked it
    card_path = directory / CARD_FILE
    old_metadata, custom = _previous_card(card_path)
    stats = compute_stats(list(files.values()), by=("split", "language"), on_skip=on_skip)
    run = read_run_info(directory)
    trained = run is not None and run.command == "train" and "train" in files  # a collect split can be GBs
    text = render_card(
        files=files,
        stats=stats,
        features=infer_features(files.values()),
        run=run,
        repo_id=repo_id,
        license=license or old_metadata.get("license") or DEFAULT_LICENSE,
        # an explicit name, else the repo's, else the one the card already has, else the folder's
        pretty_name=pretty_name
        or (_pretty_name(repo_id, directory) if repo_id else None)
        or _one_line_or_none(old_metadata.get("pretty_name"))
        or _pretty_name(None, directory),
        custom=custom,
        today=date.today().isoformat(),
        evaluation_by_step=_by_step(files.get("evaluation"), on_skip),
        curves=CURVES_FILE if (directory / CURVES_FILE).is_file() else None,
        guidance=teacher_in_group(files["train"]) if trained else None,
        private=bool(config and config.huggingface.private),
    )
    write_text(card_path, text)  # beside and renamed: a crash or a full disk never leaves half a card
    return card_path


_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")  # the Hub's ids: apache-2.0, cc-by-nc-4.0, other


def _is_one_line(text: object) -> bool:
    # The title is a Markdown heading and a BibTeX field: a line break would end it and start something else.
    return isinstance(text, str) and bool(text.strip()) and not any(ch in text for ch in "\n\r\x00")


def _check_one_line(text: str | None, what: str) -> None:
    if text is not None and not _is_one_line(text):
        raise InputError(f"{what} must be one non-empty line, got {text[:40]!r}")


def _one_line_or_none(value: object) -> str | None:
    """A title kept from the card already there, if it is one (a hand edit may have left anything)."""
    return value if _is_one_line(value) else None


def _pretty_name(repo_id: str | None, directory: Path) -> str:
    name = repo_id.split("/")[-1] if repo_id else directory.resolve().name
    return re.sub(r"[-_]+", " ", name).strip() or "rfai dataset"


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n?", re.S)


def _previous_card(path: Path) -> tuple[dict, str]:
    """(metadata, custom section) of the card already at `path`; a README rfai did not write becomes the custom section."""
    if not path.is_file():
        return {}, _DEFAULT_CUSTOM
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the existing card: {exc}") from None
    metadata: dict = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml_input.load(match.group(1))
        except yaml.YAMLError:  # unreadable, too deep, an alias bomb: the card is rewritten anyway
            loaded = None
        metadata = loaded if isinstance(loaded, dict) else {}
    start, end = text.find(CUSTOM_START), text.find(CUSTOM_END)
    if 0 <= start < end:
        return metadata, text[start + len(CUSTOM_START) : end]
    body = text[match.end() :] if match else text
    return metadata, f"\n{body.strip()}\n" if body.strip() else _DEFAULT_CUSTOM


def render_card(
    *,
    files: dict[str, Path],
    stats: dict,
    features: list[dict],
    run: RunInfo | None,
    repo_id: str | None,
    license: str,
    pretty_name: str,
    custom: str,
    today: str,
    evaluation_by_step: dict | None = None,
    curves: str | None = None,
    guidance: dict | None = None,
    private: bool = False,
) -> str:
    languages = [name for name in stats["by"]["language"] if name != MISSING]
    metadata = {
        "license": license,
        "pretty_name": pretty_name,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["code", "rlaif", "reinforcement-learning", "mlx", "rfai", *languages],
        "size_categories": [size_category(stats["rows"])],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": path.name} for split, path in files.items()],
            }
        ],
    }
    if features:
        metadata["dataset_info"] = {"features": features}
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    # With no repo id, the example loads the files beside the card (run from this directory).
    load_call = (
        f'load_dataset("{repo_id}")'
        if repo_id
        else f'load_dataset("json", data_files={ {split: path.name for split, path in files.items()}!r})'
    )
    sections = [
        f"---\n{front}---\n",
        f"# {pretty_name}\n",
        f"Code written by a student model and a teacher model for the same prompts, scored on one rubric, "
        f"with the student's reward relative to the teacher. Generated with rfai on {today}.\n",
        _splits_section(files, stats),
        _fields_section(features),
        _stats_section(stats),
        _usage_section(load_call, files, private=private and bool(repo_id)),
    ]
    if run is not None:
        sections.append(_training_section(run, evaluation_by_step, curves, guidance))
    # A heading over nothing but the invisible markers would render as an empty section.
    heading = "## Notes\n\n" if re.sub(r"<!--.*?-->", "", custom, flags=re.S).strip() else ""
    sections.append(f"{heading}{CUSTOM_START}{custom}{CUSTOM_END}\n")
    sections.append(_citation_section(pretty_name, repo_id, today[:4]))
    return "\n".join(sections)


def _splits_section(files: dict[str, Path], stats: dict) -> str:
    rows = {item["path"]: item["rows"] for item in stats["files"]}
    lines = ["## Splits\n", "| split | file | rows |", "|---|---|---:|"]
    lines += [f"| {split} | `{path.name}` | {rows.get(str(path), 0)} |" for split, path in files.items()]
    return "\n".join(lines) + "\n"


def _fields_section(features: list[dict]) -> str:
    lines = ["## Fields\n", "| field | type | meaning |", "|---|---|---|"]
    for item in features:
        kind = item.get("dtype") or ("list" if "list" in item else "struct")
        lines.append(f"| `{item['name']}` | {kind} | {FIELD_DOCS.get(item['name'], '')} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _score_table(title: str, groups: dict[str, dict]) -> str:
    header = [title, "rows"] + [f"mean {name}" for name in SCORE_FIELDS] + ["median reward", "student test pass rate"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, group in groups.items():
        cells = [label, str(group["rows"])]
        cells += [_fmt(group[name].get("mean")) for name in SCORE_FIELDS]
        cells.append(_fmt(group["reward"].get("median")))
        cells.append(_fmt(group.get("tests", {}).get("student_pass_rate")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stats_section(stats: dict) -> str:
    overall = [
        "| | " + " | ".join(("count", "mean", "std", "min", "p10", "median", "p90", "max")) + " |",
        "|---|" + "---:|" * 8,
    ]
    for name in SCORE_FIELDS:
        figures = stats[name]
        cells = [str(figures["count"])] + [
            _fmt(figures.get(k)) for k in ("mean", "std", "min", "p10", "median", "p90", "max")
        ]
        overall.append(f"| {name} | " + " | ".join(cells) + " |")
    lines = [
        "## Statistics\n",
        f"{stats['rows']} rows. Computed by `rfai stats` (medians and percentiles to within "
        f"{min(stats['quantile_resolution'].values()):g}).\n",
        "\n".join(overall) + "\n",
    ]
    single = []
    for field in ("split", "language"):
        groups = stats["by"][field]
        if len(groups) > 1:
            lines += [f"### By {field}\n", _score_table(field, groups) + "\n"]
        elif groups:  # one group would only repeat the table above
            single.append(f"{field} `{next(iter(groups))}`")
    if single:
        lines.append(f"Every row has {' and '.join(single)}.\n")
    return "\n".join([*lines, _correctness_note(stats)])


def _correctness_note(stats: dict) -> str:
    """How the student's correctness was established, and pass@k, when the rows say."""
    lines = []
    passes = stats.get("pass_at_k")
    if passes and passes.get("1") is not None:
        lines.append(f"pass@1 over {passes['tasks']} tasks ({passes['samples']} samples): {_fmt(passes['1'])}.")
    sources = stats.get("correctness_sources") or {}
    untested = sources.get("measured", 0)
    if untested:
        lines.append(
            f"{untested} rows had no tests and no judge: their correctness is only measured (the code builds, "
            "runs and defines the entry point) and their score is capped at 0.5, well below what tested "
            "code reaches; rank and filter them with that in mind."
        )
    if stats.get("unassessed"):
        lines.append(
            f"{stats['unassessed']} rows could not be assessed at all (no runner or compiler for their "
            "tests) and score 0."
        )
    return ("### Correctness\n\n" + "\n\n".join(lines) + "\n") if lines else ""


# datasets reads HF_TOKEN, never the HUGGINGFACE_TOKEN the seed guide (and rfai upload) also take.
PRIVATE_LOAD_NOTE = (
    "# A private repo: datasets reads your token from HF_TOKEN (not HUGGINGFACE_TOKEN) or from\n"
    '# `hf auth login`; or pass it, as in load_dataset(..., token="hf_...").\n'
)


def _usage_section(load_call: str, files: dict[str, Path], private: bool = False) -> str:
    first = next(iter(files))
    return f"""## Usage

```python
from datasets import load_dataset

{PRIVATE_LOAD_NOTE if private else ""}dataset = {load_call}
print(dataset)  # splits: {", ".join(files)}
for example in dataset["{first}"].select(range(3)):
    print(example["prompt"], example["student_score"], example["teacher_score"], example["reward"])
```

Select rows with rfai itself, for example the Python rows with a reward of at least 0.9:

```bash
rfai filter {files[first].name} --language python --min-reward 0.9 -o best.jsonl
```
"""


# The licences of the prompt sets rfai ships or reads, for the card.
PROMPT_LICENSES = {
    "builtin": "tasks written for rfai, Apache-2.0",
    "starter": "tasks written for rfai, Apache-2.0",
    "humaneval": "OpenAI HumanEval, MIT",
}


def _by_step(path: Path | None, on_skip: SkipHandler | None) -> dict | None:
    """The evaluation split's figures per training step (before and after training), if it has steps."""
    if path is None:
        return None
    groups = compute_stats([path], by=("step",), on_skip=on_skip)["by"]["step"]
    return {label: group for label, group in groups.items() if label != MISSING} or None


def teacher_in_group(path: Path) -> dict | None:
    """How often the teacher's answer joined a training group (rows with `sample_source: teacher`)
    and how often it had the group's best reward; None when it never did."""
    groups: dict[tuple, list] = {}  # (run, step, task) -> [best student reward, teacher reward]
    for row in read_rows(path, on_skip=lambda skip: None):
        reward = row.get("reward") if isinstance(row.get("reward"), (int, float)) else None
        group = groups.setdefault((row.get("run_id"), row.get("step"), row.get("task_id")), [None, None])
        if row.get("sample_source") == TEACHER:
            group[1] = reward
        elif reward is not None:
            group[0] = reward if group[0] is None else max(group[0], reward)
    joined = [(best, teacher) for best, teacher in groups.values() if teacher is not None]
    if not joined:
        return None
    return {
        "groups": len(groups),
        "joined": len(joined),
        "best": sum(1 for best, teacher in joined if best is None or teacher >= best),
    }


def _training_section(
    run: RunInfo, evaluation_by_step: dict | None = None, curves: str | None = None, guidance: dict | None = None
) -> str:
    facts = [
        ("run", run.run_id),
        ("command", run.command),
        ("split", run.split),
        ("runs recorded", run.runs if run.runs > 1 else None),
        ("rfai version", run.rfai_version),
        ("student model", run.student_model),
        ("teacher", _teacher(run)),
        ("steps", run.steps),
        ("reward floor", run.reward_floor),
        ("reward cap", run.reward_cap),
    ]
    facts += [(f"rubric weight: {name}", weight) for name, weight in run.rubric_weights.items()]
    source = run.extra.get("prompts")
    if isinstance(source, str):
        facts.append(("prompts", f"{source} ({PROMPT_LICENSES[source]})" if source in PROMPT_LICENSES else source))
    sampling = run.extra.get("sampling")
    if isinstance(sampling, dict) and run.command != "train":  # a training run lists it under its settings
        facts.append(("sampling", ", ".join(f"{k} {v}" for k, v in sampling.items())))
    settings = run.extra.get("training")
    if isinstance(settings, dict):
        facts += [(name.replace("_", " "), value) for name, value in settings.items()]
    if isinstance(run.extra.get("ranks"), int):
        facts.append(("data-parallel ranks", run.extra["ranks"]))
    title = "Training details" if run.command == "train" else "How it was collected"
    lines = [f"## {title}\n", "| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts if value is not None]
    floor = run.reward_floor if run.reward_floor is not None else "floor"
    cap = run.reward_cap if run.reward_cap is not None else "cap"
    lines.append(
        f"\nReward: `reward = min({cap}, student_score / max(teacher_score, {floor}))`; each score is the "
        "rubric-weighted sum of the per-criterion scores.\n"
    )
    if guidance:
        lines.append(
            f"The teacher's answer joined {guidance['joined']} of {guidance['groups']} training groups "
            f"({guidance['joined'] / guidance['groups']:.0%}) as one more sample (`sample_source: teacher`), and had "
            f"the group's best reward in {guidance['best']} of them ({guidance['best'] / guidance['joined']:.0%}).\n"
        )
    if evaluation_by_step:
        lines.append("### Evaluation before and after training\n")
        lines.append(_score_table("step", evaluation_by_step) + "\n")
    if curves:
        lines.append(f"![Training curves: reward, test pass rate and KL by step]({curves})\n")
    return "\n".join(lines)


def _teacher(run: RunInfo) -> str | None:
    """Who wrote the teacher code. Under `auto` the run's teacher model only stands in for tasks
    without a reference solution, so naming it alone would credit it with every teacher row."""
    provider = run.extra.get("teacher_provider")
    if provider == "auto":
        return f"auto: each task's reference solution, else {run.teacher_model or 'the student model'}"
    if isinstance(provider, str) and run.teacher_model:
        return f"{run.teacher_model} ({provider})"
    return run.teacher_model


def _citation_section(pretty_name: str, repo_id: str | None, year: str) -> str:
    key = re.sub(r"\W+", "_", (repo_id or pretty_name).lower()).strip("_")
    url = f"https://huggingface.co/datasets/{repo_id}" if repo_id else ""
    lines = [
        f"@misc{{{key},",
        f"  title = {{{re.sub(r'[{}]', '', pretty_name)}}},",  # BibTeX counts every brace, escaped or not
        "  note = {Generated with rfai (RL from AI feedback in MLX)},",
        f"  year = {{{year}}},",
    ]
    if url:
        lines.append(f"  url = {{{url}}},")
    lines.append("}")
    return "## Citation\n\n```bibtex\n" + "\n".join(lines) + "\n```\n"
