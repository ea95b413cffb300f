"""One RL step, end to end: rfai train against mlx-lm-lora's GRPO trainer on the same job, same run.

The job: the embedded SmolLM2-135M, 8 built-in train tasks per step x G=4 samples of
at most 128 new tokens, temperature 0.8, top-p 0.95, LoRA rank 8 on every linear layer of the
last --lora-layers blocks, kl_beta 0.04, rewards from rfai's scorer (sandboxed tests, static
analysis) against each task's reference solution. Both legs run in their own process with
OpenBLAS preloaded (rfai_cli.engine), so each one's peak RSS is its own.

- rfai: `rfai train` with that config; seconds per step and the generate / score / train split
  come from its metrics.jsonl (the evaluation pass before and after is left out of the figures).
- mlx-lm-lora: PyPI `mlx-lm-lora`, installed by this script with `pip --target` into a scratch
  directory (its other requirements are mlx-lm's, already here), its `train_grpo` with the same
  model, LoRA, group size, lengths and sampling, a second model copy as its reference (what it
  does), and a reward function that calls rfai's scorer, so both optimise the same reward.

TRL's GRPOTrainer (torch on CPU) is not a leg yet (docs/train.md, "Not built yet"). Prints seconds
per step, scored completions per minute and peak RSS per leg, the ratios, and rfai's step in
FLOPs (counted from the shapes, step_flops.py) against this machine's float32 matmul peak.

    .venv/bin/python benchmarks/train_step.py [--steps 2] [--lora-layers 8] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))  # step_flops, beside this file
PROMPTS, GROUP, MAX_TOKENS = 8, 4, 128

PEER = r"""
import json, sys, time
import rfai_cli.engine  # OpenBLAS first, as for rfai
import mlx.core as mx
import mlx.optimizers as optim
from mlx_lm_lora.trainer.grpo_trainer import GRPOTrainingArgs, train_grpo
from rfai_cli.config import load_config
from rfai_cli.data.prompts import load_prompts
from rfai_cli.engine.embedded import embedded_model_dir
from rfai_cli.engine.generation import chat_prompt, encode_prompt
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.lora import attach_lora
from rfai_cli.rollout import build_scorer, task_row
from rfai_cli.scoring import ScoreItem
from rfai_cli.teachers import build_teacher

steps, layers, adapter_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
config = load_config(None, {})
student = load_model(str(embedded_model_dir()))
reference = load_model(str(embedded_model_dir()))  # mlx-lm-lora keeps a second copy as the reference
mx.random.seed(0)
attach_lora(student.model, rank=8, alpha=16, dropout=0.0, layers=layers)
tasks = load_prompts("builtin", "train")[: %(prompts)d * (steps + 1)]
by_prompt = {}
dataset = []
for task in tasks:
    prompt = chat_prompt(student.tokenizer, task.prompt, task.language)
    by_prompt[prompt] = task
    dataset.append((encode_prompt(student.tokenizer, prompt), [], prompt, task.task_id))
teacher = build_teacher(config, student)
references = dict(zip([t.task_id for t in tasks], teacher.references(
    [(t.prompt, t.language, t.canonical_solution) for t in tasks])))
scorer = build_scorer(config, teacher)
scoring_seconds = [0.0]


def rfai_reward(prompts, completions, answer, types=None):
    started = time.perf_counter()
    items = [ScoreItem(task_row(by_prompt[p]), [c], references[a].code or None)
             for p, c, a in zip(prompts, completions, answer)]
    results = scorer.score_many(items)
    scoring_seconds[0] += time.perf_counter() - started
    return [float(r.rewards[0] or 0.0) for r in results]


args = GRPOTrainingArgs(
    batch_size=%(prompts)d, iters=steps, group_size=%(group)d, max_completion_length=%(tokens)d,
    temperature=0.8, top_p=0.95, top_k=0, beta=0.04, steps_per_report=1, steps_per_eval=10**6,
    steps_per_save=10**6, adapter_file=adapter_file, max_seq_length=2048,
)
started = time.perf_counter()
with scorer:
    train_grpo(student.model, reference.model, student.tokenizer, optim.AdamW(learning_rate=1e-5),
               dataset, reward_funcs=[rfai_reward], args=args, end_answer_token="")
print(json.dumps({"seconds": time.perf_counter() - started, "score_seconds": scoring_seconds[0]}))
"""


def run_measured(command: list[str], cwd: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    """Run `command`; (result, its peak RSS in GiB) from wait4, so each leg's is its own."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, process.returncode, out.read().decode(), err.read().decode())
    return result, usage.ru_maxrss / 2**20


def rfai_leg(steps: int, layers: int, work: Path) -> dict:
    config = f"""
training:
  batch_size: {PROMPTS}
  num_samples_per_prompt: {GROUP}
  max_new_tokens: {MAX_TOKENS}
  lora_layers: {layers}
  max_steps: {steps}
  warmup_steps: 0
  gradient_accumulation_steps: 4
  checkpoint_every: {steps}
  eval_steps: 0
  eval_samples: 1
  eval_limit: 1
"""
    (work / "config.yaml").write_text(config)
    result, peak = run_measured([sys.executable, "-m", "rfai_cli", "train", "--json"], work, dict(os.environ))
    if result.returncode:
        sys.exit(f"rfai train failed:\n{result.stderr[-2000:]}")
    metrics = [json.loads(line) for line in (work / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    split = {k: sum(m[f"seconds_{k}"] for m in metrics) / len(metrics) for k in ("generate", "score", "train")}
    return {
        "seconds_per_step": sum(split.values()),
        **split,
        "peak_rss_gib": peak,
        "flops": _flops(work, metrics, layers),
    }


def _flops(work: Path, metrics: list[dict], layers: int) -> dict:
    """The step's mean FLOPs per half (step_flops.py), from the prompts it trained on (their
    chat-formatted token counts) and its completion lengths."""
    from step_flops import Shapes, step_flops

    from rfai_cli.engine.embedded import embedded_model_dir
    from rfai_cli.engine.generation import chat_prompt, encode_prompt
    from rfai_cli.engine.loading import load_model

    directory = embedded_model_dir()
    tokenizer = load_model(str(directory)).tokenizer
    rows = [json.loads(line) for path in (work / "datasets").glob("*.jsonl") for line in path.read_text().splitlines()]
    totals = {"generate": 0.0, "train": 0.0}
    for step in metrics:
        mine = [r for r in rows if r.get("step") == step["step"]]
        prompts = {(r["prompt"], r.get("language", "python")) for r in mine}
        lengths = [len(encode_prompt(tokenizer, chat_prompt(tokenizer, p, lang))) for p, lang in prompts]
        samples = len(mine)  # students and joined teachers
        figures = step_flops(Shapes.of(directory), lengths, samples, step["completion_tokens_mean"], layers)
        for half in totals:
            totals[half] += figures[half] / len(metrics)
    return totals


def peer_leg(steps: int, layers: int, work: Path) -> dict:
    scratch = work / "mlx-lm-lora"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(scratch), "mlx-lm-lora"],
        capture_output=True,
        text=True,
    )
    if install.returncode:
        sys.exit(f"cannot install mlx-lm-lora: {install.stderr[-1000:]}")
    script = work / "peer.py"
    script.write_text(PEER % {"prompts": PROMPTS, "group": GROUP, "tokens": MAX_TOKENS})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(scratch), str(REPO)])}
    command = [sys.executable, str(script), str(steps), str(layers), str(work / "peer-adapters.safetensors")]
    result, peak = run_measured(command, work, env)
    if result.returncode:
        sys.exit(f"mlx-lm-lora failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "seconds_per_step": figures["seconds"] / steps,
        "score": figures["score_seconds"] / steps,
        "peak_rss_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--lora-layers", type=int, default=8)
    parser.add_argument("--skip-peer", action="store_true", help="only the rfai leg")
    args = parser.parse_args()
    completions = PROMPTS * GROUP
    with tempfile.TemporaryDirectory() as root:
        legs = {"rfai": rfai_leg(args.steps, args.lora_layers, Path(root))}
        if not args.skip_peer:
            (Path(root) / "peer").mkdir()
            legs["mlx-lm-lora"] = peer_leg(args.steps, args.lora_layers, Path(root) / "peer")
    from step_flops import matmul_peak

    import rfai_cli.engine  # noqa: F401  (OpenBLAS, as the legs have it)

    peak = matmul_peak()
    print(f"{PROMPTS} prompts x G={GROUP} x <= {MAX_TOKENS} tokens, LoRA rank 8 on the last {args.lora_layers} blocks")
    print(f"  float32 1024^3 matmul peak here: {peak / 1e9:.0f} GFLOP/s")
    for name, leg in legs.items():
        per_minute = completions * 60 / leg["seconds_per_step"]
        split = " / ".join(f"{k} {leg[k]:.1f}s" for k in ("generate", "score", "train") if k in leg)
        print(
            f"  {name:12s} {leg['seconds_per_step']:6.1f} s/step  {per_minute:5.1f} completions/min  "
            f"peak RSS {leg['peak_rss_gib']:.2f} GiB  ({split})"
        )
    flops = legs["rfai"]["flops"]
    for half in ("generate", "train"):
        seconds = legs["rfai"][half]
        print(
            f"  rfai {half}: {flops[half] / 1e12:.2f} TFLOP in {seconds:.1f} s = {flops[half] / seconds / 1e9:.0f} GFLOP/s, "
            f"{flops[half] / seconds / peak:.0%} of the matmul peak (at the peak: {flops[half] / peak:.1f} s)"
        )
    if "mlx-lm-lora" in legs:
        print(
            f"  rfai vs mlx-lm-lora: {legs['mlx-lm-lora']['seconds_per_step'] / legs['rfai']['seconds_per_step']:.2f}x"
        )
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"  (measured {started})")


if __name__ == "__main__":
    main()
