"""A run that uploads its dataset (train and collect, `huggingface.upload_datasets`), through the
real CLI against the project's Hub-compatible server: what the upload needs is checked before the
model loads, success says where the data went, and a failed upload at the end fails the command
without losing anything."""

from __future__ import annotations

import json
import time

from support.hubserver import BOB_TOKEN, READ_TOKEN, WRITE_TOKEN
from test_train import config_text

REPO = "alice/trained-rows"
FAKE_AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"  # the shape of an access key id: the upload's secret scan refuses it


def uploading(tiny_model_dir, repo_id: str | None = REPO, steps: int = 1) -> str:
    hf = "huggingface:\n  upload_datasets: true\n" + (f"  dataset_repo_id: {repo_id}\n" if repo_id else "")
    return config_text(tiny_model_dir, steps) + hf


def test_an_upload_that_cannot_happen_stops_the_run_before_the_model_loads(rfai, hub, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(uploading(tiny_model_dir))
    for token, code, expected in (
        (None, 2, "error: no Hugging Face token found"),
        (READ_TOKEN, 1, "is read-only: uploading to alice/trained-rows needs a write token"),
        (BOB_TOKEN, 1, "belongs to 'bob', who may not write under 'alice'"),
        ("hf_unknownToken0123456789abcdefghijkl", 1, "authentication failed: the Hub rejected the token"),
    ):
        started = time.monotonic()
        result = rfai("train", env=hub.env(token=token))
        assert result.returncode == code and expected in result.stderr, (token, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "hf_" not in result.stderr
        assert time.monotonic() - started < 30
        assert not (tmp_path / "checkpoints").exists() and not list((tmp_path / "datasets").glob("*.jsonl"))
    assert hub.repo(REPO) is None
    (tmp_path / "config.yaml").write_text(uploading(tiny_model_dir, repo_id=None))
    unnamed = rfai("train", env=hub.env())
    assert unnamed.returncode == 2 and "upload_datasets is true but dataset_repo_id is not set" in unnamed.stderr


def test_train_uploads_at_the_end_and_says_where(rfai, hub, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(uploading(tiny_model_dir))
    result = rfai("train", env=hub.env())
    assert result.returncode == 0, result.stderr
    commit = hub.repo(REPO).head().sha
    assert f"uploaded to {hub.url}/datasets/{REPO} (commit {commit[:7]})" in result.stdout
    assert "1 steps (training.max_steps (1) reached)" in result.stdout
    loaded = hub.load(REPO, token=WRITE_TOKEN)
    assert len(loaded["train"]) == len((tmp_path / "datasets" / "train.jsonl").read_text().splitlines())
    commits = hub.commits(REPO)
    again = json.loads(rfai("train", "--resume", "--json", env=hub.env()).stdout)  # nothing sampled again
    assert again["upload"] == f"{REPO} was already up to date at {commit[:7]}" and again["upload_error"] is None
    assert again["ended"].startswith("already complete") and hub.commits(REPO) == commits


def test_a_failed_upload_at_the_end_fails_the_command_and_keeps_everything(rfai, hub, tmp_path, tiny_model_dir):
    """The check at the start passes; the upload itself is refused (a secret in the teacher's rows)."""
    tasks = [
        {"task_id": f"t{i}", "prompt": f"Write f{i}() returning {i}.", "language": "python",
         "tests": [f"assert f{i}() == {i}"], "solution": f"def f{i}():\n    key = '{FAKE_AWS_KEY}'\n    return {i}\n"}
        for i in range(2)
    ]  # fmt: skip
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(task) + "\n" for task in tasks))
    (tmp_path / "config.yaml").write_text(uploading(tiny_model_dir) + "data:\n  train_prompts: tasks.jsonl\n")
    result = rfai("train", env=hub.env())
    assert result.returncode == 1
    assert "1 steps (training.max_steps (1) reached)" in result.stdout  # the run's own summary came first
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: upload failed (refusing to upload:") and FAKE_AWS_KEY not in line
    assert line.endswith(f"retry with rfai upload --repo-id {REPO} --dataset-dir datasets")
    assert (tmp_path / "datasets" / "README.md").is_file() and (
        tmp_path / "checkpoints" / "adapters.safetensors"
    ).is_file()
    assert hub.repo(REPO) is None


def test_collect_writes_the_card_and_uploads_when_configured(rfai, hub, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(uploading(tiny_model_dir))
    result = rfai("collect", "--limit", "2", "--samples", "1", "--split", "evaluation", env=hub.env())
    assert result.returncode == 0, result.stderr
    assert f"uploaded to {hub.url}/datasets/{REPO}" in result.stdout
    assert "evaluation" in hub.load(REPO, token=WRITE_TOKEN)  # the card's configs name the split
    refused = rfai("collect", "--limit", "1", "--samples", "1", env=hub.env(token=READ_TOKEN))
    assert refused.returncode == 1 and "read-only" in refused.stderr


def test_upload_adapters_makes_a_model_repo_that_mlx_lm_loads(rfai, hub, tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    config = config_text(tiny_model_dir, 1) + "huggingface:\n  dataset_repo_id: alice/trained-rows\n"
    (tmp_path / "config.yaml").write_text(config)
    assert rfai("train").returncode == 0
    env = hub.env(HF_HUB_DISABLE_XET="1")  # the LFS batch protocol, which the test server speaks
    result = rfai("upload", "--adapters", "checkpoints", "--repo-id", "alice/tiny-lora", env=env)
    assert result.returncode == 0, result.stderr
    repo = hub.state.repo("model", "alice/tiny-lora")
    files = repo.head().files
    assert set(files) >= {"adapters.safetensors", "adapter_config.json", "README.md"}
    assert files["adapters.safetensors"].data == (tmp_path / "checkpoints" / "adapters.safetensors").read_bytes()
    card = files["README.md"].data.decode()
    assert "datasets:\n- alice/trained-rows\n" in card and "library_name: mlx" in card
    assert f"uploaded 3 file(s) to {hub.url}/alice/tiny-lora (commit " in result.stdout
    assert (
        f"hf download alice/tiny-lora --local-dir adapters; mlx_lm.generate --model {tiny_model_dir}" in result.stdout
    )
    assert "%|" not in result.stderr  # no progress bars in a pipe
    # What a user does with it: download the repo, load the base model named in it with the adapters.
    script = (
        "import json, sys; from huggingface_hub import snapshot_download; from mlx_lm.utils import load\n"
        "path = snapshot_download('alice/tiny-lora')\n"
        "load(json.load(open(path + '/adapter_config.json'))['model'], adapter_path=path)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]

    fused = rfai("upload", "--adapters", "checkpoints", "--repo-id", "alice/tiny-fused", "--fuse", env=env)
    assert fused.returncode == 0, fused.stderr
    files = hub.state.repo("model", "alice/tiny-fused").head().files
    assert {"config.json", "adapters/adapters.safetensors", "adapters/adapter_config.json"} <= set(files)
    assert any(name.endswith(".safetensors") and "/" not in name for name in files)

    for args, expected in (
        (("--adapters", "checkpoints"), "--adapters needs --repo-id"),
        (
            ("--adapters", "checkpoints", "--repo-id", "alice/x", "--format", "parquet"),
            "--format: for a dataset upload",
        ),
        (("--adapters", "datasets", "--repo-id", "alice/x"), "adapters.safetensors not found"),
        (("--fuse",), "--fuse goes with --adapters"),
    ):
        refused = rfai("upload", *args, env=hub.env())
        assert refused.returncode == 2 and expected in refused.stderr, (args, refused.stderr)


def test_the_base_model_a_card_names_is_one_others_can_load(tmp_path, monkeypatch):
    from rfai_cli.data.model_repo import published_base_model
    from rfai_cli.engine import embedded

    monkeypatch.setenv("RFAI_CACHE", str(tmp_path))
    converted = tmp_path / "models" / "smollm2-135m-instruct-f32-v1-0123456789ab"
    converted.mkdir(parents=True)
    assert published_base_model(str(converted)) == embedded.HUB_ID  # the embedded model: its original on the Hub
    assert (
        published_base_model("mlx-community/Qwen2.5-Coder-0.5B-Instruct-4bit")
        == "mlx-community/Qwen2.5-Coder-0.5B-Instruct-4bit"
    )
    assert published_base_model(str(tmp_path)) is None  # a local model has no Hub id to name
