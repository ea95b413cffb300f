"""`rfai upload` end to end: the real CLI, the real huggingface_hub and datasets clients, a real HTTP server.

Clients run in subprocesses with HF_ENDPOINT pointing at the `hub` fixture (huggingface_hub
reads it at import time); the tests inspect the server's state directly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.hubserver import BOB_TOKEN, READ_TOKEN, WRITE_TOKEN, Blob, LoadFailed

from rfai_cli.data.parquet import parse_size
from rfai_cli.data.splitcheck import check_split, merge_schemas
from rfai_cli.errors import InputError
from rfai_cli.records import JsonlWriter, new_record

REPO = "alice/rfai-ds"
COUNTS = {"train": 5, "validation": 2, "evaluation": 3}


def make_row(split: str, i: int) -> dict:
    row = {
        "prompt": f"Implement function number {i} for {split}",
        "language": "python",
        "student_code": f"def f{i}(x):\n    return x + {i}\n",
        "teacher_code": f'def f{i}(x):\n    """Add {i}."""\n    return x + {i}\n',
        "student_score": 0.85,
        "teacher_score": 0.92,
        "reward": 0.924,
        "scoring_breakdown": {"correctness": 0.3, "code_quality": 0.3, "efficiency": 0.2, "documentation": 0.2},
        "timestamp": "2024-01-15T10:30:00",
        "split": split,
        "task_id": f"{split}/{i}",
        "schema_version": 1,
    }
    if split == "train":  # as the trainer writes: advantage only exists in training rows
        row["advantage"] = 0.1 * i - 0.2
    return row


def write_split(directory: Path, split: str, rows: list[dict], mode: str = "w") -> None:
    """Rows as `collect` writes them (the real record writer); mode "w" starts the file over."""
    path = directory / f"{split}.jsonl"
    if mode == "w":
        path.unlink(missing_ok=True)
    with JsonlWriter(path) as writer:
        writer.write_many(new_record(**row) for row in rows)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    directory = tmp_path / "datasets"
    for split, count in COUNTS.items():
        write_split(directory, split, [make_row(split, i) for i in range(count)])
    return directory


def upload(rfai, hub, *args: str, token: str | None = WRITE_TOKEN, **env: str):
    return rfai("upload", "--repo-id", REPO, "--dataset-dir", "datasets", *args, env=hub.env(token=token, **env))


def assert_clean(result, *secrets: str) -> None:
    """No traceback, and no token anywhere in what the user sees."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for secret in (WRITE_TOKEN, READ_TOKEN, BOB_TOKEN, *secrets):
        assert secret not in output


def same_rows(loaded: list[dict], original: list[dict]) -> None:
    assert len(loaded) == len(original)
    for got, want in zip(loaded, original):
        for key, value in want.items():
            if key == "timestamp":  # datasets' JSON reader parses ISO timestamps; the date survives
                assert str(got[key]).startswith("2024-01-15")
            else:
                assert got[key] == pytest.approx(value) if isinstance(value, float) else got[key] == value, key


# ---------------------------------------------------------------------------- round trips


@pytest.mark.slow
def test_round_trip_keeps_the_three_split_names(rfai, hub, dataset):
    result = upload(rfai, hub, COLUMNS="80")  # a CI log: an 80-column pipe
    assert result.returncode == 0, result.stderr
    assert_clean(result)
    # The whole URL on its line, for grep and copy-paste (rich used to wrap it at 80 columns).
    assert re.search(
        rf"^created and uploaded 4 file\(s\) to http://\S+/datasets/{REPO} \(commit \w{{7}}\)$", result.stdout, re.M
    )
    assert "token: from HUGGINGFACE_TOKEN" in result.stderr
    repo = hub.repo(REPO)
    assert repo is not None and repo.repo_type == "dataset" and not repo.private
    assert {"train.jsonl", "validation.jsonl", "evaluation.jsonl", "README.md"} <= set(hub.files(REPO))
    assert hub.commits(REPO) == 2  # the repo's initial commit + one with the splits and the card

    loaded = hub.load(REPO)
    # `evaluation` must come back as `evaluation`: datasets' own guess from the file name is `test`.
    assert sorted(loaded) == ["evaluation", "train", "validation"]
    for split, count in COUNTS.items():
        same_rows(loaded[split], [make_row(split, i) for i in range(count)])
    assert loaded["validation"][0]["advantage"] is None  # a train-only column is declared for every split


@pytest.mark.slow
def test_rerun_unchanged_makes_no_commit_and_growth_does(rfai, hub, dataset):
    assert upload(rfai, hub).returncode == 0
    again = upload(rfai, hub)
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout
    assert hub.commits(REPO) == 2

    write_split(dataset, "train", [make_row("train", i) for i in range(5, 7)], mode="a")
    grown = upload(rfai, hub, "--commit-message", "more rows")
    assert grown.returncode == 0, grown.stderr
    assert hub.commits(REPO) == 3
    assert hub.repo(REPO).head().message == "more rows"
    loaded = hub.load(REPO)
    same_rows(loaded["train"], [make_row("train", i) for i in range(7)])


@pytest.mark.slow
def test_parquet_shards_load_back_identically(rfai, hub, dataset):
    env = {"HF_HUB_DISABLE_XET": "1"}  # LFS batch protocol, which the test server speaks
    result = upload(rfai, hub, "--format", "parquet", "--max-shard-size", "1KB", **env)
    assert result.returncode == 0, result.stderr
    files = hub.files(REPO)
    shards = sorted(p for p in files if p.startswith("data/train-"))
    assert len(shards) > 1 and shards[0] == f"data/train-00000-of-{len(shards):05d}.parquet"
    assert not any(p.endswith(".jsonl") for p in files)
    assert all(hub.repo(REPO).head().files[p].lfs for p in shards)

    loaded = hub.load(REPO)
    assert sorted(loaded) == ["evaluation", "train", "validation"]
    for split, count in COUNTS.items():
        original = [make_row(split, i) for i in range(count)]
        # Parquet keeps every value exactly, timestamps included; absent columns read as None.
        assert [{k: row[k] for k in want} for row, want in zip(loaded[split], original)] == original

    again = upload(rfai, hub, "--format", "parquet", "--max-shard-size", "1KB", **env)
    assert again.returncode == 0 and "already up to date" in again.stdout
    # Fewer, bigger shards: the old ones of each split go in the same commit.
    bigger = upload(rfai, hub, "--format", "parquet", **env)
    assert bigger.returncode == 0, bigger.stderr
    assert sorted(p for p in hub.files(REPO) if p.startswith("data/train-")) == ["data/train-00000-of-00001.parquet"]
    assert len(hub.load(REPO)["train"]) == COUNTS["train"]


# ---------------------------------------------------------------------------- options


def test_private_repo_from_the_config(rfai, hub, dataset):
    (dataset.parent / "config.yaml").write_text(
        f"huggingface:\n  dataset_repo_id: {REPO}\n  dataset_output_dir: ./datasets\n  private: true\n"
    )
    result = rfai("upload", env=hub.env())
    assert result.returncode == 0, result.stderr
    assert hub.repo(REPO).private
    with pytest.raises(LoadFailed):
        hub.load(REPO)  # anonymous: not found
    assert len(hub.load(REPO, token=WRITE_TOKEN)["train"]) == COUNTS["train"]


def test_set_reaches_the_command_and_a_bad_one_stops_it(rfai, hub, dataset):
    """Any config key from the command line, through the real CLI: the repo id and privacy here."""
    other = REPO + "-set"
    result = rfai(
        "upload", "--dataset-dir", "datasets", "--set", f"huggingface.dataset_repo_id={other}",
        "--set", "huggingface.private=true", env=hub.env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hub.repo(other).private
    bad = rfai("upload", "--dataset-dir", "datasets", "--set", "huggingface.private=maybe", env=hub.env())
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "error: --set: huggingface.private: expected true or false, got 'maybe'"
    )


def test_private_requested_but_repo_is_public(rfai, hub, dataset):
    assert upload(rfai, hub).returncode == 0
    result = upload(rfai, hub, "--private")
    assert result.returncode == 1
    assert "exists and is public" in result.stderr
    assert hub.commits(REPO) == 2


def test_dry_run_sends_no_write_and_changes_nothing(rfai, hub, dataset):
    result = upload(rfai, hub, "--dry-run", "--format", "parquet")
    assert result.returncode == 0, result.stderr
    assert "parquet" in result.stdout and "README.md" in result.stdout and "nothing was sent" in result.stdout
    assert hub.state.writes() == []
    assert hub.repo(REPO) is None
    assert sorted(p.name for p in dataset.iterdir()) == ["evaluation.jsonl", "train.jsonl", "validation.jsonl"]

    listed = json.loads(upload(rfai, hub, "--dry-run", "--json").stdout)
    sizes = {f["path"]: f["size"] for f in listed["files"]}
    assert sizes["train.jsonl"] == (dataset / "train.jsonl").stat().st_size
    assert listed["dry_run"] and listed["token_source"] == "HUGGINGFACE_TOKEN"


def test_overwrite_removes_stale_files_in_the_same_commit(rfai, hub, dataset):
    assert upload(rfai, hub).returncode == 0
    repo = hub.repo(REPO)
    head = repo.head()
    stale = hub.state.new_commit(repo, head.sha, "add a stale file", {**head.files, "old.csv": Blob(b"a,b\n", False)})
    repo.branches["main"] = stale.sha

    plan = upload(rfai, hub, "--overwrite", "--dry-run")
    assert "would delete: old.csv" in plan.stdout and hub.repo(REPO).head().sha == stale.sha

    kept = upload(rfai, hub)
    assert kept.returncode == 0 and "old.csv" in hub.files(REPO)  # without --overwrite nothing goes

    write_split(dataset, "train", [make_row("train", 9)], mode="a")
    result = upload(rfai, hub, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert "deleted: old.csv" in result.stdout
    files = hub.files(REPO)
    assert "old.csv" not in files and ".gitattributes" in files
    assert files["train.jsonl"] == (dataset / "train.jsonl").read_bytes()
    assert hub.repo(REPO).head().parent == stale.sha  # one commit did both


def test_tag_revision_and_pull_request(rfai, hub, dataset):
    result = upload(rfai, hub, "--tag", "v2")
    assert result.returncode == 0, result.stderr
    repo = hub.repo(REPO)
    assert repo.tags["v2"] == repo.branches["main"]
    assert upload(rfai, hub, "--tag", "v2").returncode == 0  # unchanged re-run: same commit, same tag

    write_split(dataset, "train", [make_row("train", 9)], mode="a")
    moved = upload(rfai, hub, "--tag", "v2")
    assert moved.returncode == 1 and "tag 'v2' already exists" in moved.stderr
    main = repo.branches["main"]

    write_split(dataset, "evaluation", [make_row("evaluation", 9)], mode="a")
    branch = upload(rfai, hub, "--revision", "dev")
    assert branch.returncode == 0, branch.stderr
    assert repo.branches["main"] == main and repo.branches["dev"] != main
    assert hub.files(REPO, "dev")["evaluation.jsonl"] == (dataset / "evaluation.jsonl").read_bytes()

    pr = upload(rfai, hub, "--create-pr")
    assert pr.returncode == 0, pr.stderr
    assert "pull request:" in pr.stdout and repo.branches["main"] == main and 1 in repo.prs


def test_seed_flag_names_and_json(rfai, hub, dataset):
    result = rfai(
        "upload",
        "--dataset_dir",
        "datasets",
        "--repo_id",
        REPO,
        "--hf_token",
        WRITE_TOKEN,
        "--json",
        env=hub.env(token=""),
    )
    assert result.returncode == 0, result.stderr
    assert_clean(result)
    report = json.loads(result.stdout)
    assert report["created"] and report["changed"] and report["token_source"] == "--token"
    assert report["commit"] == hub.repo(REPO).branches["main"]


# ---------------------------------------------------------------------------- tokens and failures


def test_token_order_and_saved_login(rfai, hub, dataset):
    # HUGGINGFACE_TOKEN (the seed's) wins over HF_TOKEN: a bad one there fails even with a good HF_TOKEN.
    bad_first = upload(rfai, hub, token="hf_notAValidToken000000000000000000", HF_TOKEN=WRITE_TOKEN)
    assert bad_first.returncode == 1
    assert "authentication failed" in bad_first.stderr and "HUGGINGFACE_TOKEN" in bad_first.stderr
    assert_clean(bad_first, "hf_notAValidToken000000000000000000")

    from_hf_token = upload(rfai, hub, token=None, HF_TOKEN=WRITE_TOKEN)
    assert from_hf_token.returncode == 0 and "token: from HF_TOKEN" in from_hf_token.stderr

    (hub.home / "token").write_text(WRITE_TOKEN)  # what `hf auth login` saves
    saved = upload(rfai, hub, token=None)
    assert saved.returncode == 0, saved.stderr
    assert "token: from saved login" in saved.stderr
    assert_clean(saved)

    (hub.home / "token").unlink()
    none = upload(rfai, hub, token=None)
    assert none.returncode == 2 and "no Hugging Face token" in none.stderr  # missing input, as a missing file


def test_bad_token_leaves_nothing_behind(rfai, hub, dataset):
    result = upload(rfai, hub, token="hf_expiredToken0000000000000000000000")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: authentication failed")
    assert_clean(result, "hf_expiredToken0000000000000000000000")
    assert hub.repo(REPO) is None and hub.state.lfs_objects == {}


def test_read_only_token_and_foreign_namespace(rfai, hub, dataset):
    assert upload(rfai, hub).returncode == 0
    write_split(dataset, "train", [make_row("train", 9)], mode="a")
    read_only = upload(rfai, hub, token=READ_TOKEN)
    assert read_only.returncode == 1 and "permission denied" in read_only.stderr, read_only.stderr
    assert hub.commits(REPO) == 2
    assert_clean(read_only)

    foreign = rfai("upload", "--repo-id", "bob/private-ds", "--dataset-dir", "datasets", env=hub.env())
    assert foreign.returncode == 1 and "permission denied on bob/private-ds" in foreign.stderr
    assert hub.repo("bob/private-ds") is None


@pytest.mark.slow
def test_upload_timeout_says_how_to_resume(rfai, hub, dataset):
    assert upload(rfai, hub).returncode == 0
    write_split(dataset, "train", [make_row("train", 9)], mode="a")
    hub.state.commit_status = 504  # the client retries with backoff (about 20 s), then gives up
    result = upload(rfai, hub)
    assert result.returncode == 1
    assert "upload timed out" in result.stderr and "Re-run the same command to resume" in result.stderr
    assert hub.commits(REPO) == 2
    hub.state.commit_status = None
    assert upload(rfai, hub).returncode == 0 and hub.commits(REPO) == 3


def test_secrets_are_refused_before_anything_is_sent(rfai, hub, dataset):
    leaked = make_row("train", 7)
    leaked["student_code"] = 'client = Anthropic(api_key="sk-ant-api03-' + "Ab1" * 10 + '")\n'
    write_split(dataset, "train", [leaked], mode="a")
    result = upload(rfai, hub)
    assert result.returncode == 1
    assert "1 secret(s)" in result.stderr and "train.jsonl:6" in result.stderr and "student_code" in result.stderr
    assert "sk-ant-api03" not in result.stderr
    assert hub.state.requests == []

    allowed = upload(rfai, hub, "--allow-secrets")
    assert allowed.returncode == 0, allowed.stderr
    assert "uploaded 1 secret(s)" in allowed.stderr


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: None, "dataset directory not found"),
        (lambda d: d.mkdir(), "no dataset rows to upload"),
        (lambda d: write_split(d, "train", []), "no dataset rows to upload"),
        (
            lambda d: (d.mkdir(), (d / "train.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')),
            "train.jsonl:2: invalid JSON",
        ),
        (
            lambda d: write_split(d, "validation", [{"prompt": "a", "student_score": "high"}]),
            "validation.jsonl:1: field 'student_score'",
        ),
    ],
    ids=["missing", "empty-dir", "empty-file", "bad-json", "bad-type"],
)
def test_bad_dataset_dirs_are_one_line_errors(rfai, hub, tmp_path, setup, expected):
    setup(tmp_path / "datasets")
    result = upload(rfai, hub)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert hub.state.requests == []


def test_bad_options(rfai, hub, dataset):
    assert "OWNER/NAME" in rfai("upload", "--repo-id", "justaname", "--dataset-dir", "datasets", env=hub.env()).stderr
    assert "no repository" in rfai("upload", "--dataset-dir", "datasets", env=hub.env()).stderr
    both = upload(rfai, hub, "--create-pr", "--revision", "dev")
    assert both.returncode == 2 and "--create-pr" in both.stderr
    assert "invalid size" in upload(rfai, hub, "--format", "parquet", "--max-shard-size", "lots").stderr
    assert hub.state.requests == []


def test_mixed_types_block_parquet_but_not_jsonl(rfai, hub, tmp_path):
    directory = tmp_path / "datasets"
    write_split(directory, "train", [{"prompt": "a", "tests": "assert f()"}, {"prompt": "b", "tests": ["assert g()"]}])
    parquet = upload(rfai, hub, "--format", "parquet")
    assert parquet.returncode == 2 and "train.jsonl:2" in parquet.stderr and "--format jsonl" in parquet.stderr
    jsonl = upload(rfai, hub, "--dry-run", "--no-card")
    assert jsonl.returncode == 0 and "will have to guess" in jsonl.stderr


# ---------------------------------------------------------------------------- the pieces


def test_check_split_merges_types_and_finds_conflicts(tmp_path):
    write_split(tmp_path, "train", [{"a": 1, "s": {"x": 1}}, {"a": 1.5, "s": {"y": "q"}, "n": None}])
    write_split(tmp_path, "validation", [{"a": 2, "extra": [1, 2]}])
    checks = [check_split("train", tmp_path / "train.jsonl"), check_split("validation", tmp_path / "validation.jsonl")]
    schema = merge_schemas(checks)
    assert str(schema.field("a").type) == "double"
    assert [f.name for f in schema.field("s").type] == ["x", "y"]
    assert "extra" in schema.names and checks[0].rows == 2

    write_split(tmp_path, "evaluation", [{"a": 1}] * 3 + [{"a": "text"}])
    conflicted = check_split("evaluation", tmp_path / "evaluation.jsonl")
    assert conflicted.schema is None and conflicted.conflict.startswith(f"{tmp_path / 'evaluation.jsonl'}:4:")


def test_parse_size():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1GiB") == 1024**3
    assert parse_size("2.5kb") == 2500
    assert parse_size(123) == 123
    with pytest.raises(InputError):
        parse_size("0")


def test_stats_reads_a_dataset_on_the_hub(rfai, hub, dataset):
    """`rfai stats hf://datasets/OWNER/NAME`, as pandas and DuckDB spell a Hub dataset."""
    assert upload(rfai, hub).returncode == 0
    remote = rfai("stats", f"hf://datasets/{REPO}", "--json", env=hub.env())
    assert remote.returncode == 0, remote.stderr
    local = json.loads(rfai("stats", "datasets", "--json").stdout)
    figures = json.loads(remote.stdout)
    assert figures["rows"] == sum(COUNTS.values()) and figures["reward"] == local["reward"]
    assert figures["by"]["split"].keys() == local["by"]["split"].keys()
    missing = rfai("stats", "hf://datasets/alice/no-such-data", env=hub.env())
    assert missing.returncode == 1 and "alice/no-such-data: dataset repo not found" in missing.stderr
    assert "the token may read it" in missing.stderr and "write" not in missing.stderr  # a read's advice
    assert WRITE_TOKEN not in missing.stderr
