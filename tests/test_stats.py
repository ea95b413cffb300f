import json
import random

import numpy as np
import pytest

from rfai_cli.data.stats import compute_stats
from rfai_cli.errors import InputError


def seed_row(i: int, rng: random.Random, **extra) -> dict:
    student, teacher = round(rng.random(), 4), round(0.5 + rng.random() / 2, 4)
    return {
        "prompt": f"task {i}",
        "language": ("python", "C++", "rust")[i % 3],
        "student_code": "def f():\n    return 1\n",
        "teacher_code": "def f():\n    return 1\n",
        "student_score": student,
        "teacher_score": teacher,
        "reward": round(min(2.0, student / max(teacher, 0.05)), 4),
        "scoring_breakdown": {"correctness": 0.3, "code_quality": 0.3, "efficiency": 0.2, "documentation": 0.2},
        "timestamp": "2024-01-15T10:30:00",
        **extra,
    }


def write_jsonl(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def test_figures_equal_numpy_and_pandas_conventions(tmp_path):
    rng = random.Random(1)
    rows = [seed_row(i, rng) for i in range(3000)]
    result = compute_stats([write_jsonl(tmp_path / "train.jsonl", rows)], block_bytes=64 << 10)
    for name in ("student_score", "teacher_score", "reward"):
        values = np.array([row[name] for row in rows])
        figures = result[name]
        assert figures["count"] == len(values)
        assert figures["mean"] == pytest.approx(values.mean(), abs=1e-6)
        assert figures["std"] == pytest.approx(values.std(ddof=1), abs=1e-6)  # pandas' describe() std
        for key, q in (("p10", 0.1), ("median", 0.5), ("p90", 0.9)):
            # Values with 4 decimals sit exactly on the grid: quantiles are exact.
            assert figures[key] == pytest.approx(np.quantile(values, q), abs=1e-9), key
        assert (figures["min"], figures["max"]) == (values.min(), values.max())
    by_language = result["by"]["language"]
    assert sorted(by_language) == ["cpp", "python", "rust"]  # C++ normalised
    assert sum(group["rows"] for group in by_language.values()) == 3000
    python = np.array([row["reward"] for row in rows if row["language"] == "python"])
    assert by_language["python"]["reward"]["mean"] == pytest.approx(python.mean(), abs=1e-6)
    assert by_language["python"]["reward"]["median"] == pytest.approx(np.median(python), abs=1e-9)
    assert result["by"]["split"] == {"train": result["by"]["split"]["train"]}  # named by the file
    assert sum(result["histograms"]["student_score"]["counts"]) == 3000


def test_quantiles_of_arbitrary_values_stay_within_the_reported_resolution(tmp_path):
    values = np.random.default_rng(0).normal(0, 50, 5000)  # wide range: the grid coarsens
    rows = [{"reward": float(v)} for v in values]
    result = compute_stats([write_jsonl(tmp_path / "x.jsonl", rows)], block_bytes=32 << 10)
    resolution = result["quantile_resolution"]["reward"]
    assert resolution > 1e-4
    for key, q in (("p10", 0.1), ("median", 0.5), ("p90", 0.9)):
        assert abs(result["reward"][key] - np.quantile(values, q)) <= resolution


def test_fast_and_line_by_line_paths_agree(tmp_path):
    rng = random.Random(2)
    rows = [seed_row(i, rng, split="train") for i in range(400)]
    clean = compute_stats([write_jsonl(tmp_path / "a.jsonl", rows)], block_bytes=4096)
    # The same rows plus bad lines in several blocks: those blocks take the tolerant path.
    bad = rows[:100] + ["{not json"] + rows[100:300] + ['{"student_score": "high"}', "[1, 2]"] + rows[300:]
    mixed = compute_stats([write_jsonl(tmp_path / "b.jsonl", bad)], block_bytes=4096)
    for key in ("rows", "student_score", "teacher_score", "reward", "by", "histograms"):
        assert mixed[key] == clean[key], key
    assert mixed["skipped"]["total"] == 3
    assert mixed["skipped"]["examples"][0].endswith(
        "b.jsonl:101: invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    )
    assert [e.split(":")[1] for e in mixed["skipped"]["examples"]] == ["101", "302", "303"]


def test_every_invalid_type_is_skipped_like_read_rows(tmp_path):
    lines = [
        '{"prompt": 5, "reward": 1.0}',
        '{"reward": true}',
        '{"sample_index": 1.5, "reward": 1.0}',
        '{"scoring_breakdown": "x", "reward": 1.0}',
        '{"a": 1}{"b": 2}',
        '{"reward": 0.5}',
        '{"tests": ["a", "b"], "reward": 0.25}',  # a list of tests is valid
    ]
    result = compute_stats([write_jsonl(tmp_path / "x.jsonl", lines)])
    assert result["rows"] == 2
    assert result["reward"]["mean"] == 0.375
    assert result["skipped"]["total"] == 5


def test_prompt_file_gets_counts_by_language(tmp_path):
    rows = [
        {"prompt": "a", "language": "python"},
        {"prompt": "b", "language": "py"},
        {"prompt": "c", "language": "rust"},
    ]
    result = compute_stats([write_jsonl(tmp_path / "prompts.jsonl", rows)])
    assert result["rows"] == 3
    assert result["student_score"] == {"count": 0}
    assert {k: v["rows"] for k, v in result["by"]["language"].items()} == {"python": 2, "rust": 1}
    assert result["histograms"] == {}


def test_test_pass_rates_and_custom_grouping(tmp_path):
    rows = [
        {
            "reward": 1.0,
            "task_id": "t1",
            "test_results": {"student": {"passed": 1, "total": 4}, "teacher": {"passed": 4, "total": 4}},
        },
        {
            "reward": 0.5,
            "task_id": "t2",
            "test_results": {"student": {"passed": 3, "total": 4}, "teacher": {"passed": 3, "total": 4}},
        },
        {"reward": 0.2, "task_id": "t1"},
    ]
    result = compute_stats([write_jsonl(tmp_path / "x.jsonl", rows)], by=["task_id"])
    assert result["tests"] == {
        "rows": 2,
        "student_passed": 4,
        "student_total": 8,
        "student_pass_rate": 0.5,
        "teacher_passed": 7,
        "teacher_total": 8,
        "teacher_pass_rate": 0.875,
    }
    assert {k: v["rows"] for k, v in result["by"]["task_id"].items()} == {"t1": 2, "t2": 1}
    assert result["by"]["task_id"]["t2"]["tests"]["student_pass_rate"] == 0.75


def test_strict_stops_at_the_first_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ['{"reward": 1}', "oops"])
    with pytest.raises(InputError, match=r"x.jsonl:2: invalid JSON"):
        compute_stats([path], strict=True)


def test_grouping_by_an_object_is_refused(tmp_path):
    with pytest.raises(InputError, match="cannot group by 'test_results'"):
        compute_stats([write_jsonl(tmp_path / "x.jsonl", ['{"reward": 1}'])], by=["test_results"])


# ---------------------------------------------------------------- through the real CLI


def test_cli_json_in_a_pipe_is_plain_and_complete(rfai, tmp_path):
    rng = random.Random(3)
    write_jsonl(tmp_path / "train.jsonl", [seed_row(i, rng) for i in range(50)])
    result = rfai("stats", "train.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == 50 and "\x1b" not in result.stdout
    assert set(data["by"]) == {"language", "split"}


def test_cli_tables_show_scores_groups_histogram_and_skips(rfai, tmp_path):
    rng = random.Random(4)
    write_jsonl(tmp_path / "train.jsonl", [seed_row(i, rng) for i in range(20)] + ["garbage"])
    result = rfai("stats", "train.jsonl")
    assert result.returncode == 0, result.stderr
    for text in ("20 rows", "By language", "By split", "student_score distribution", "median", "skipped 1 lines"):
        assert text in result.stdout, text
    assert "warning: skipped train.jsonl:21: invalid JSON" in result.stderr


def test_cli_reads_stdin(rfai):
    result = rfai("stats", "-", "--json", input='{"language": "python", "reward": 0.5}\n')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["by"]["language"]["python"]["rows"] == 1


def one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def test_cli_bad_inputs(rfai, tmp_path):
    assert "no such file" in one_line_error(rfai("stats", "missing.jsonl"))
    (tmp_path / "folder").mkdir()
    assert "is a directory" in one_line_error(rfai("stats", "folder"))
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)) * 64)
    assert "not UTF-8 text (NUL bytes" in one_line_error(rfai("stats", "binary.jsonl"))
    (tmp_path / "binary2.jsonl").write_bytes(bytes(range(1, 256)) * 64)
    assert "no valid rows" in one_line_error(rfai("stats", "binary2.jsonl"))
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    assert "not UTF-8" in one_line_error(rfai("stats", "latin1.jsonl"))
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    assert "cannot read" in one_line_error(rfai("stats", "bad.gz"))


def test_cli_empty_file_is_zero_rows(rfai, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    result = rfai("stats", "empty.jsonl", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["rows"] == 0


def test_cli_malformed_line_in_the_middle_and_wrong_type_are_reported(rfai, tmp_path):
    lines = ['{"reward": 0.5}', '{"reward": 0.7', '{"student_score": "high"}', '{"reward": 0.9}']
    write_jsonl(tmp_path / "x.jsonl", lines)
    result = rfai("stats", "x.jsonl", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "x.jsonl:2: invalid JSON" in result.stderr
    assert "x.jsonl:3: field 'student_score'" in result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == 2 and data["skipped"]["total"] == 2


def test_cli_ten_megabyte_line(rfai, tmp_path):
    huge = json.dumps({"prompt": "x" * (10 << 20), "language": "python", "reward": 1.5})
    write_jsonl(tmp_path / "x.jsonl", ['{"reward": 0.5}', huge, '{"reward": 1.0}'])
    result = rfai("stats", "x.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reward"]["max"] == 1.5


def test_cli_bad_config_is_exit_two(rfai, tmp_path):
    write_jsonl(tmp_path / "x.jsonl", ['{"reward": 0.5}'])
    (tmp_path / "bad.yaml").write_text("training:\n  top_p: high\n")
    assert "training.top_p" in one_line_error(rfai("stats", "x.jsonl", "--config", "bad.yaml"))


def scored_row(i: int, rng: random.Random) -> dict:
    """A row of task i // 10 with test counts and the student's correctness source."""
    total = 4
    passed = rng.choice([0, 2, 4, 4])
    source = rng.choice(["tests", "tests", "measured", "unassessed"])
    return seed_row(
        i,
        rng,
        task_id=f"t{i // 10}",
        sample_index=i % 10,
        test_results={"student": {"passed": passed, "total": total}, "teacher": {"passed": 4, "total": 4}},
        score_sources={"student": {"correctness": source}, "teacher": {"reference": "fallback: x"}},
    )


def unbiased_pass_at(n: int, c: int, k: int) -> float:
    from math import comb

    return 1.0 - comb(n - c, k) / comb(n, k)


def test_pass_at_k_and_correctness_sources_on_both_paths(tmp_path):
    rng = random.Random(3)
    rows = [scored_row(i, rng) for i in range(300)] + [
        seed_row(999, rng, task_id="few", test_results={"passed": 1, "total": 1})
    ]
    clean = compute_stats([write_jsonl(tmp_path / "a.jsonl", rows)], block_bytes=4096, pass_at=(1, 5, 10))
    mixed = compute_stats(
        [write_jsonl(tmp_path / "b.jsonl", rows[:150] + ["", "{bad"] + rows[150:])],
        block_bytes=4096,
        pass_at=(1, 5, 10),
    )
    for key in ("pass_at_k", "correctness_sources", "unassessed", "by"):
        assert mixed[key] == clean[key], key
    tasks: dict[str, list[int]] = {}
    for row in rows:
        counts = row["test_results"].get("student", row["test_results"])
        n_c = tasks.setdefault(row["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += counts["passed"] == counts["total"]
    figures = clean["pass_at_k"]
    assert figures["tasks"] == 31 and figures["samples"] == 301
    for k in (1, 5, 10):
        eligible = [unbiased_pass_at(n, c, k) for n, c in tasks.values() if n >= k]
        assert figures[str(k)] == pytest.approx(sum(eligible) / len(eligible), abs=1e-6)
    assert figures["tasks_too_few"] == {"5": 1, "10": 1}  # the task with a single sample
    sources = [row["score_sources"]["student"]["correctness"] for row in rows[:300]]
    assert clean["correctness_sources"] == {name: sources.count(name) for name in set(sources)}
    assert clean["unassessed"] == sources.count("unassessed")
    assert clean["by"]["language"]["python"]["pass_at_k"]["tasks"] > 0  # per group too


def test_cli_pass_at_option_and_unassessed_in_the_table(rfai, tmp_path):
    rng = random.Random(4)
    path = write_jsonl(tmp_path / "evaluation.jsonl", [scored_row(i, rng) for i in range(40)])
    result = rfai("stats", path, "--pass-at", "1,5", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures["pass_at_k"]) >= {"1", "5", "tasks", "samples"}
    table = rfai("stats", path, "--pass-at", "1,5")
    assert "pass@1" in table.stdout and "pass@5" in table.stdout and "unassessed" in table.stdout
    bad = rfai("stats", path, "--pass-at", "0,x")
    assert bad.returncode == 2 and "--pass-at" in bad.stderr and "Traceback" not in bad.stderr


def test_a_score_on_a_bin_edge_lands_in_the_bin_it_opens(tmp_path):
    from rfai_cli.data.stats import compute_stats

    path = tmp_path / "edges.jsonl"
    path.write_text(
        "".join(
            json.dumps({"student_score": v, "teacher_score": 1.0, "reward": v}) + "\n"
            for v in (0.7, 0.7, 0.3, 1.0, 0.0)
        )
    )
    histogram = compute_stats([path])["histograms"]["student_score"]
    counts = dict(zip(histogram["edges"], histogram["counts"]))
    assert counts[0.7] == 2 and counts[0.3] == 1 and counts[0.0] == 1 and counts[0.9] == 1  # 1.0 closes the last bin
    assert sum(histogram["counts"]) == 5


def test_in_a_pipe_nothing_is_cut(tmp_path):
    """At 80 columns (the default when stdout is not a terminal) rich cut keys to `rfai/py/…`."""
    import subprocess
    import sys

    from conftest import REPO

    path = tmp_path / "long.jsonl"
    task = "rfai/py/" + "a-very-long-task-identifier-" * 4 + "007"
    path.write_text(json.dumps({"task_id": task, "student_score": 0.5, "teacher_score": 1.0, "reward": 0.5}) + "\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "rfai_cli", "stats", str(path), "--by", "task_id"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert result.returncode == 0 and task in result.stdout and "…" not in result.stdout


def test_grouping_by_a_field_no_row_has_is_an_error_not_one_none_group(tmp_path, rfai):
    path = tmp_path / "rows.jsonl"
    rows = [{"task_id": "t", "language": "python", "student_score": 0.5, "difficulty": "easy"}] * 2
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    typo = rfai("stats", path, "--by", "nosuchfield")
    assert typo.returncode == 2 and "--by nosuchfield: no row has that field" in typo.stderr, typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1
    extra = rfai("stats", path, "--by", "difficulty")  # a field of the user's own rows groups as any other
    assert extra.returncode == 0 and "easy" in extra.stdout
    known = rfai("stats", path, "--by", "run_id")  # a record field these rows leave empty: one "(none)" group
    assert known.returncode == 0 and "(none)" in known.stdout


def test_each_group_shows_its_own_pass_at_k(tmp_path, rfai):
    path = tmp_path / "steps.jsonl"
    rows = [
        {
            "task_id": "t",
            "step": step,
            "language": "python",
            "student_score": 0.1 + step,
            "test_results": {"student": {"passed": 2 * step, "total": 2}},
        }
        for step in (0, 1)
        for _ in range(2)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = rfai("stats", path, "--by", "step", "--pass-at", "1")
    assert out.returncode == 0, out.stderr
    table = out.stdout[out.stdout.index("By step") :]
    assert "pass@1" in table
    lines = {cells[0]: cells for cells in map(str.split, table.splitlines()) if cells and cells[0] in ("0", "1")}
    assert lines["0"][-1] == "0.000" and lines["1"][-1] == "1.000", table  # pooled, it would be 0.5


def run_rows(rng: random.Random, tasks: int, samples: int, p_pass: dict[str, float], **extra) -> list[dict]:
    """`samples` tested rows for each of `tasks` tasks; task t passes all its tests with probability p_pass[t]."""
    return [
        {
            "task_id": f"t{t}",
            "language": "python",
            "student_score": 0.5,
            "test_results": {"student": {"passed": int(rng.random() < p_pass[f"t{t}"]), "total": 1}},
            "student_model": "base-model",
            **extra,
        }
        for t in range(tasks)
        for _ in range(samples)
    ]


def test_compare_is_the_paired_difference_over_shared_tasks_on_every_path(tmp_path):
    rng = random.Random(5)
    ease = {f"t{t}": rng.random() for t in range(40)}  # tasks differ far more than the runs do
    base = run_rows(rng, 40, 4, ease)
    adapted = run_rows(rng, 40, 4, {t: min(1.0, p + 0.2) for t, p in ease.items()}, student_adapter="a@123")
    adapted.append(dict(adapted[0], task_id="only-here"))  # a task the base run has not: left out of the pairs
    paths = [write_jsonl(tmp_path / "base.jsonl", base), write_jsonl(tmp_path / "adapted.jsonl", adapted)]

    def per_task(rows):
        counts = {}
        for row in rows:
            n_c = counts.setdefault(row["task_id"], [0, 0])
            n_c[0] += 1
            n_c[1] += row["test_results"]["student"]["passed"]
        return counts

    before, after = per_task(base), per_task(adapted)
    shared = sorted(set(before) & set(after))
    for k in (1, 2):
        d = np.array([unbiased_pass_at(*after[t], k) - unbiased_pass_at(*before[t], k) for t in shared])
        for careful, block in ((True, 2048), (False, 8 << 20)):
            for field, labels in (
                ("file", ("base.jsonl", "adapted.jsonl")),
                ("model", ("base-model", "base-model + a@123")),
            ):
                result = compute_stats(paths, by=[], compare=field, pass_at=(1, 2), careful=careful, block_bytes=block)
                compared = result["compare"]
                assert compared["baseline"].endswith(labels[0]) and list(result["by"][field])[0].endswith(labels[0])
                ((label, entry),) = compared["groups"].items()
                assert label.endswith(labels[1]) and entry["tasks"] == 40
                assert entry[str(k)]["difference"] == pytest.approx(d.mean(), abs=1e-6)
                assert entry[str(k)]["standard_error"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)), abs=1e-6)
    # paired, the runs' difference stands out; as two independent means its error would be several times larger
    independent = np.sqrt(np.var([unbiased_pass_at(*before[t], 1) for t in shared], ddof=1) / 40 * 2)
    assert entry["1"]["standard_error"] < independent / 2


def test_cli_compare_by_file_and_step_and_groups_in_order(rfai, tmp_path):
    rng = random.Random(6)
    ease = {f"t{t}": 0.3 for t in range(8)}
    rows = [dict(row, step=step) for step in (0, 10, 2) for row in run_rows(rng, 8, 2, ease)]
    path = write_jsonl(tmp_path / "evaluation.jsonl", rows)
    out = rfai("stats", path, "--compare", "step", env={"COLUMNS": "120"})
    assert out.returncode == 0, out.stderr
    table = out.stdout[out.stdout.index("Against step 0, paired by task") :]
    steps = [cells[0] for cells in map(str.split, table.splitlines()) if cells and cells[0].isdigit()]
    assert steps == ["2", "10"], table  # by value, not as text ("10" < "2")
    assert "Δ pass@1" in table and "± s.e." in table
    by_file = json.loads(rfai("stats", path, path, "--by", "file", "--json").stdout)
    assert list(by_file["by"]["file"]) == [path] and by_file["by"]["file"][path]["rows"] == 2 * len(rows)
    nothing = rfai("stats", path, "--compare", "language")
    assert nothing.returncode == 0 and "nothing to compare" in nothing.stdout


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_on_a_terminal_of_any_width_no_number_is_cut(tmp_path, columns):
    """At 60 columns the nine-column scores table used to show `0.7…`."""
    import os

    from conftest import REPO, RFAI
    from support.terminal import run_on_terminal, screen_lines

    rng = random.Random(7)
    rows = [dict(scored_row(i, rng), step=i % 3) for i in range(300)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    command = [*RFAI, "stats", path, "--by", "step", "--by", "language", "--pass-at", "1,2", "--compare", "step"]
    code, drawn = run_on_terminal(
        command, tmp_path, {**os.environ, "PYTHONPATH": str(REPO)}, columns=columns, stdout_too=True
    )
    assert code == 0, drawn
    shown = "\n".join(screen_lines(drawn, columns))
    assert "…" not in shown, shown
    figures = json.loads(
        __import__("subprocess")
        .run([*command, "--json"], capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        .stdout
    )
    for name in ("student_score", "teacher_score", "reward"):
        for figure in ("mean", "p90", "max"):
            assert f"{figures[name][figure]:.3f}" in shown, (name, figure, shown)
    for group in figures["by"]["step"].values():
        assert f"{group['pass_at_k']['2']:.3f}" in shown
    assert f"{figures['compare']['groups']['2']['1']['difference']:+.3f}" in shown
