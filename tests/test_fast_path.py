"""DuckDB's fast path under `stats` and `filter` gives the careful path's answer, byte for byte.

Each broken file mixes good rows with one kind of bad line. The real CLI runs on it twice,
once as is (the fast path, where it can vouch for the file) and once with `--careful` (every
line through Python's json), and the two must print the same figures, the same warnings and
keep the same bytes; a pipe (stdin, always careful) must keep the same bytes too. The first
test shows why the checks exist: DuckDB's reader alone reads most of these files differently.
"""

from __future__ import annotations

import json
import random
import subprocess

import duckdb
import pytest
from conftest import RFAI
from test_stats import seed_row

from rfai_cli.data import columnar
from rfai_cli.data.parquet import write_shards
from rfai_cli.data.splitcheck import check_split, merge_schemas
from rfai_cli.data.stats import compute_stats
from rfai_cli.records import normalize_language

RNG = random.Random(7)
GOOD = [
    json.dumps(
        seed_row(
            i,
            RNG,
            task_id=f"t{i % 5}",
            split="train",
            sample_index=i,
            test_results={"student": {"passed": i % 3, "total": 2}, "teacher": {"passed": 2, "total": 2}},
            score_sources={"student": {"correctness": "tests", "verdicts": "outside"}},
        )
    ).encode()
    for i in range(60)
]
ROW = json.loads(GOOD[0])


def _with(**changes) -> bytes:
    return json.dumps({**ROW, **changes}).encode()


# One kind of bad (or odd) line each; all but the last few are lines parse_line refuses.
BAD_LINES = {
    "wrong type": _with(student_code=5),
    "object for a text field": _with(language={"name": "python"}),
    "list for a text field": _with(prompt=["a", "b"]),
    "bool for a text field": _with(timestamp=True),
    "a text that reads as a number": _with(prompt="42"),  # valid: the fast path merely declines it
    "string for a score": _with(reward="0.9"),
    "bool for a score": _with(reward=True),
    "float for a count": _with(sample_index=1.0),
    "list for an object": _with(scoring_breakdown=[1]),
    "invalid UTF-8": _with(prompt="caf\udce9").decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape"),
    "trailing comma": _with()[:-1] + b", }",
    "nested trailing comma": _with(scoring_breakdown={"a": 1}).replace(b'{"a": 1}', b'{"a": 1,}'),
    "nan literal": _with()[:-1] + b', "extra": nan}',
    "NaN score": _with()[:-1].replace(b'"reward": ', b'"reward": NaN, "was": ') + b"}",
    "duplicate key": _with()[:-1] + b', "reward": 0.1}',
    "duplicate key inside": _with(test_results={}).replace(
        b'"test_results": {}', b'"test_results": {"passed": 1, "passed": 2, "total": 2}'
    ),
    "deep nesting": _with()[:-1] + b', "extra": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "deep known object": _with(scoring_breakdown={}).replace(
        b'"scoring_breakdown": {}', b'"scoring_breakdown": ' + b'{"a": ' * 1200 + b"1" + b"}" * 1200
    ),
    "a thousand open brackets": b"[" * 1000,  # short, unclosed: Python's json raised RecursionError here
    "lone surrogate": _with(prompt="x").replace(b'"prompt": "x"', b'"prompt": "\\ud800"'),
    "two objects": _with() + _with(),
    "not an object": b"[1, 2]",
    "10 MB line": _with(prompt="x" * (10 << 20)),
    "escaped key": _with(student_code="x").replace(b'"student_code"', b'"student_\\u0063ode"'),
    "blank lines": b"\n  \n\t",
}
TORN = b'{"prompt": "cut here'  # a torn last line, without its newline


def _broken_file(tmp_path, kind: str, torn: bool = False) -> str:
    lines = [*GOOD[:30], BAD_LINES[kind], *GOOD[30:]]
    data = b"\n".join(lines) + b"\n" + (TORN if torn else b"")
    path = tmp_path / f"{kind.replace(' ', '-')}.jsonl"
    path.write_bytes(data)
    return str(path)


def _rfai(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RFAI, *args], input=stdin, capture_output=True, timeout=120)


def test_duckdb_alone_reads_broken_files_differently(tmp_path):
    """The naive fast path: DuckDB's own reader, trusted. It keeps rows Python refuses."""
    differs = []
    for kind in BAD_LINES:
        path = _broken_file(tmp_path, kind)
        careful = compute_stats([path], careful=True)["rows"]
        try:
            naive = duckdb.sql(
                f"SELECT count(*) FROM read_json('{path}', format='newline_delimited', "
                "columns={'reward': 'DOUBLE', 'student_code': 'VARCHAR', 'scoring_breakdown': 'JSON'})"
            ).fetchall()[0][0]
        except duckdb.Error:
            continue  # DuckDB refuses the file: no wrong answer, only no answer
        if naive != careful:
            differs.append(kind)
    assert {"wrong type", "string for a score", "trailing comma", "nan literal", "list for an object"} <= set(differs)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_fast_and_careful_paths_agree_on_broken_files(tmp_path, kind):
    path = _broken_file(tmp_path, kind, torn=kind == "blank lines")
    fast, careful = _rfai("stats", path, "--json"), _rfai("stats", path, "--json", "--careful")
    assert fast.returncode == careful.returncode == 0, fast.stderr
    assert fast.stdout == careful.stdout and fast.stderr == careful.stderr
    figures = json.loads(fast.stdout)
    assert figures["rows"] >= len(GOOD) and figures["tests"]["rows"] == figures["rows"]

    bounds = ["--min-reward", "0.5", "--language", "python", "--language", "rust"]
    fast = _rfai("filter", path, *bounds, "--json")
    careful = _rfai("filter", path, *bounds, "--json", "--careful")
    piped = _rfai("filter", "-", *bounds, "--json", stdin=open(path, "rb").read())
    assert fast.returncode == careful.returncode == piped.returncode == 0, fast.stderr
    assert fast.stdout == careful.stdout == piped.stdout  # the kept lines, byte for byte
    assert fast.stderr == careful.stderr
    assert json.loads(fast.stderr.splitlines()[-1])["kept"] == len(fast.stdout.splitlines()) > 0


def test_clean_files_take_the_fast_path_and_broken_ones_do_not(tmp_path):
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(GOOD) + b"\n")
    columns = {"reward": columnar.score_column("reward")}
    assert sum(batch.num_rows for batch in columnar.read_batches(clean, columns)) == len(GOOD)
    refused = ("wrong type", "object for a text field", "list for a text field", "bool for a text field")
    for kind in (*refused, "trailing comma", "nan literal", "duplicate key inside", "deep known object"):
        with pytest.raises(columnar.Unvouched):
            list(columnar.read_batches(_broken_file(tmp_path, kind), columns))


def test_fast_path_figures_equal_the_careful_paths_on_rfai_rows(tmp_path):
    rows = [json.loads(line) for line in GOOD]
    for i, row in enumerate(rows):  # the shapes collect and train write, and the older flat one
        if i % 4 == 1:
            row["test_results"] = {"passed": 1, "total": 2}
        if i % 4 == 2:
            row.pop("test_results")
            row["score_sources"] = {"student": {"correctness": "judge"}}
        if i % 7 == 3:
            row["language"] = " Python3 "
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    by = ["language", "split", "task_id", "sample_index"]
    columns = {"reward": columnar.score_column("reward"), **columnar.pass_count_columns()}
    assert sum(batch.num_rows for batch in columnar.read_batches(path, columns, by)) == len(rows)  # vouched for
    fast = compute_stats([path], by=by, pass_at=(1, 2))
    assert fast == compute_stats([path], by=by, pass_at=(1, 2), careful=True)
    assert fast["tests"]["rows"] == 45 and fast["correctness_sources"] == {"judge": 15, "tests": 45}


def test_parquet_shards_and_directories_give_the_same_figures(tmp_path, rfai):
    data = tmp_path / "datasets"
    data.mkdir()
    (data / "train.jsonl").write_bytes(b"\n".join(GOOD[:40]) + b"\n")
    (data / "evaluation.jsonl").write_bytes(b"\n".join(GOOD[40:]) + b"\n")
    jsonl = json.loads(rfai("stats", "--json", str(data / "train.jsonl"), str(data / "evaluation.jsonl")).stdout)
    whole = json.loads(rfai("stats", "--json", str(data)).stdout)
    checks = [check_split(split, data / f"{split}.jsonl") for split in ("train", "evaluation")]
    schema = merge_schemas(checks)
    hub = tmp_path / "hub"
    for check in checks:
        write_shards(check, schema, hub, max_shard_size=4000)  # several shards per split
    assert len(list((hub / "data").glob("train-*.parquet"))) > 1
    parquet = json.loads(rfai("stats", "--json", str(hub)).stdout)
    for figures in (whole, parquet):
        assert {k: v for k, v in figures.items() if k != "files"} == {k: v for k, v in jsonl.items() if k != "files"}
    assert sorted(parquet["by"]["split"]) == ["evaluation", "train"]

    kept = rfai("filter", str(hub), "--min-reward", "0.5").stdout.splitlines()
    expected = rfai("filter", str(data), "--min-reward", "0.5").stdout.splitlines()

    def rows(lines):  # the shards hold rows as upload wrote them: languages normalised (C++ -> cpp)
        return [{**json.loads(line), "language": normalize_language(json.loads(line)["language"])} for line in lines]

    assert rows(kept) == rows(expected) and kept


@pytest.mark.parametrize("kind", ["wrong type", "trailing comma", "blank lines"])
def test_gzipped_files_agree_too(tmp_path, kind):
    import gzip

    plain = _broken_file(tmp_path, kind)
    packed = tmp_path / "train.jsonl.gz"
    packed.write_bytes(gzip.compress(open(plain, "rb").read()))
    clean = tmp_path / "validation.jsonl.gz"
    clean.write_bytes(gzip.compress(b"\n".join(GOOD) + b"\n"))
    for path in (packed, clean):
        fast, careful = _rfai("stats", str(path), "--json"), _rfai("stats", str(path), "--json", "--careful")
        assert fast.returncode == 0 and fast.stdout == careful.stdout and fast.stderr == careful.stderr
        fast, careful = (
            _rfai("filter", str(path), "--min-reward", "0.5"),
            _rfai("filter", str(path), "--min-reward", "0.5", "--careful"),
        )
        assert fast.returncode == 0 and fast.stdout == careful.stdout and fast.stderr == careful.stderr
    columns = {"reward": columnar.score_column("reward")}
    assert sum(batch.num_rows for batch in columnar.read_batches(clean, columns)) == len(GOOD)


def test_one_depth_rule_for_every_reader(tmp_path):
    """pyarrow and DuckDB follow any depth, Python's json about 970 levels (less deeper in the
    stack): rfai's rule is 512, the same on every path."""
    import pyarrow as pa
    import pyarrow.json as pj

    def nested(depth: int) -> bytes:
        return _with()[:-1] + b', "extra": ' + b'{"a": [' * (depth // 2) + b"0" + b"]}" * (depth // 2) + b"}"

    too_deep, deep_enough = nested(514), nested(510)  # the row itself is one more level
    assert pj.read_json(pa.BufferReader(too_deep + b"\n")).num_rows == 1  # the naive block path took it
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"\n".join([*GOOD[:5], too_deep, deep_enough, *GOOD[5:10]]) + b"\n")
    for extra in ([], ["--careful"]):
        stats = _rfai("stats", str(path), "--json", *extra)
        assert json.loads(stats.stdout)["rows"] == 11
        assert b"deep.jsonl:6: nested more than 512 levels" in stats.stderr
        kept = _rfai("filter", str(path), *extra)
        assert len(kept.stdout.splitlines()) == 11 and b"deep.jsonl:6: nested more than 512 levels" in kept.stderr


def test_file_names_are_taken_literally(tmp_path):
    """DuckDB reads `t?.jsonl` as a glob (it would add t1.jsonl's rows) and `http:x` as a URL."""
    (tmp_path / "t1.jsonl").write_bytes(GOOD[0] + b"\n")
    odd = tmp_path / "t?.jsonl"
    odd.write_bytes(b"\n".join(GOOD[1:4]) + b"\n")
    assert duckdb.sql(f"SELECT count(*) FROM read_json('{odd}')").fetchall()[0][0] == 4  # the naive reading
    for name in ("t?.jsonl", "it's.jsonl", "http:x.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"\n".join(GOOD[1:4]) + b"\n")
        assert json.loads(_rfai("stats", str(path), "--json").stdout)["rows"] == 3
        assert len(_rfai("filter", str(path)).stdout.splitlines()) == 3


def test_filter_checks_lines_cut_by_its_reads(tmp_path, monkeypatch):
    """filter reads in chunks and checks each chunk's bytes: a trailing comma on a line cut in
    two by a read must still be seen (else DuckDB's reading of that line would be kept)."""
    import io

    from rfai_cli.data import filter as filtering

    path = _broken_file(tmp_path, "trailing comma")
    spec = filtering.FilterSpec(minimum={"reward": 0.0})
    careful = io.BytesIO()
    filtering.filter_rows(path, careful, spec, careful=True)
    bad = open(path, "rb").read().index(b", }")
    for size in range(bad - 40, bad + 40, 7):  # reads that cut the bad line at many places
        monkeypatch.setattr(filtering, "COPY_BYTES", size)
        fast = io.BytesIO()
        filtering.filter_rows(path, fast, spec)
        assert fast.getvalue() == careful.getvalue(), size
