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

- TRL (`--trl`): GRPOTrainer 1.x with PEFT LoRA on torch's CPU build, in a virtualenv of its own
  (made on first use), loading the same model directory (the embedded model as rfai converted
  it), the same chat-formatted prompts, G, lengths, sampling, LoRA, kl_beta and micro-batches, and
  rewarded by rfai's scorer in a server process (peer_reward.py).

Prints seconds per step, scored completions per minute and peak RSS per leg, the ratios, and
rfai's step in FLOPs (counted from the shapes, step_flops.py) against this machine's float32
matmul peak.

    .venv/bin/python benchmarks/train_step.py [--steps 2] [--lora-layers 8] [--skip-peer] [--trl] [--rfai-nproc 2]
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
sys.path.insert(0, str(Path(__file__).parent))  # step_flops and peer_reward, beside this file
PROMPTS, GROUP, MAX_TOKENS = 8, 4, 128
MICRO_BATCHES = 4  # rfai and TRL take each step's 32 completions through the update in 4 micro-batches of 8
TRL_PACKAGES = ["torch==2.13.0", "trl", "peft"]  # torch 2.13.0: the CPU build (docs/train.md)

PEER = r"""
import json, sys, time
import rfai_cli.engine  # OpenBLAS first, as for rfai
import mlx.core as mx
import mlx.optimizers as optim
from mlx_lm_lora.trainer.grpo_trainer import GRPOTrainingArgs, train_grpo
from peer_reward import Reward, train_tasks
from rfai_cli.engine.embedded import embedded_model_dir
from rfai_cli.engine.generation import chat_prompt, encode_prompt
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.lora import attach_lora

steps, layers, adapter_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
student = load_model(str(embedded_model_dir()))
reference = load_model(str(embedded_model_dir()))  # mlx-lm-lora keeps a second copy as the reference
mx.random.seed(0)
attach_lora(student.model, rank=8, alpha=16, dropout=0.0, layers=layers)
tasks = train_tasks(%(prompts)d * (steps + 1))
dataset = []
for task in tasks:
    prompt = chat_prompt(student.tokenizer, task.prompt, task.language)
    dataset.append((encode_prompt(student.tokenizer, prompt), [], prompt, task.task_id))
reward = Reward(tasks, student)


def rfai_reward(prompts, completions, answer, types=None):
    return reward(answer, completions)


args = GRPOTrainingArgs(
    batch_size=%(prompts)d, iters=steps, group_size=%(group)d, max_completion_length=%(tokens)d,
    temperature=0.8, top_p=0.95, top_k=0, beta=0.04, steps_per_report=1, steps_per_eval=10**6,
    steps_per_save=10**6, adapter_file=adapter_file, max_seq_length=2048,
)
started = time.perf_counter()
with reward:
    train_grpo(student.model, reference.model, student.tokenizer, optim.AdamW(learning_rate=1e-5),
               dataset, reward_funcs=[rfai_reward], args=args, end_answer_token="")
print(json.dumps({"seconds": time.perf_counter() - started, "score_seconds": reward.seconds}))
"""


TRL = r"""
import json, subprocess, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

model_dir, tasks_file, steps, layers, output_dir = sys.argv[1:6]
steps, layers = int(steps), int(layers)
scorer = subprocess.Popen(sys.argv[6:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def rfai_reward(prompts, completions, task_id, **_):
    scorer.stdin.write(json.dumps({"task_ids": task_id, "completions": completions}) + "\n")
    scorer.stdin.flush()
    return json.loads(scorer.stdout.readline())


torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(model_dir)
blocks = model.config.num_hidden_layers
lora = LoraConfig(
    r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM", layers_to_transform=list(range(blocks - layers, blocks)),
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)
args = GRPOConfig(
    output_dir=output_dir, use_cpu=True, bf16=False, seed=0, max_steps=steps, learning_rate=1e-5,
    per_device_train_batch_size=%(micro_batch)d, gradient_accumulation_steps=%(micro_batches)d, num_generations=%(group)d,
    max_completion_length=%(tokens)d, temperature=0.8, top_p=0.95, top_k=0, beta=0.04,
    logging_steps=1, save_strategy="no", report_to=[], dataloader_num_workers=0,
)
trainer = GRPOTrainer(model=model, reward_funcs=rfai_reward, args=args, processing_class=tokenizer,
                      train_dataset=Dataset.from_list(json.load(open(tasks_file))), peft_config=lora)
started = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - started
scorer.stdin.close()
score_seconds = json.loads(scorer.stdout.read().strip().splitlines()[-1])["score_seconds"]
print(json.dumps({"seconds": seconds, "score_seconds": score_seconds}))
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


def rfai_leg(steps: int, layers: int, work: Path, nproc: int = 1) -> dict:
    config = f"""
training:
  batch_size: {PROMPTS}
  num_samples_per_prompt: {GROUP}
  max_new_tokens: {MAX_TOKENS}
  lora_layers: {layers}
  max_steps: {steps}
  warmup_steps: 0
  gradient_accumulation_steps: {MICRO_BATCHES}
  checkpoint_every: {steps}
  eval_steps: 0
  eval_samples: 1
  eval_limit: 1
  learning_rate: 1.0e-5
data:
  train_prompts: builtin
"""
    (work / "config.yaml").write_text(config)
    ranks = ["--nproc", str(nproc)] if nproc > 1 else []
    result, peak = run_measured([sys.executable, "-m", "rfai_cli", "train", "--json", *ranks], work, dict(os.environ))
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(scratch), str(REPO), str(REPO / "benchmarks")])}
    command = [sys.executable, str(script), str(steps), str(layers), str(work / "peer-adapters.safetensors")]
    return run_peer("mlx-lm-lora", command, work, env, steps)


def trl_leg(steps: int, layers: int, work: Path, venv: Path) -> dict:
    """TRL's GRPOTrainer (torch on the CPU, PEFT LoRA) on the same model, tasks and reward; its
    environment is a virtualenv of its own (`venv`, made on first use), since torch has no place
    in rfai's."""
    from peer_reward import train_tasks

    from rfai_cli.engine.embedded import embedded_model_dir
    from rfai_cli.engine.generation import chat_prompt
    from rfai_cli.engine.loading import load_model

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *TRL_PACKAGES], check=True)
    directory = embedded_model_dir()
    tokenizer = load_model(str(directory)).tokenizer
    tasks = train_tasks(PROMPTS * (steps + 1))
    rows = [{"prompt": chat_prompt(tokenizer, task.prompt, task.language), "task_id": task.task_id} for task in tasks]
    (work / "tasks.json").write_text(json.dumps(rows))
    script = work / "trl_leg.py"
    script.write_text(
        TRL
        % {
            "micro_batch": PROMPTS * GROUP // MICRO_BATCHES,
            "micro_batches": MICRO_BATCHES,
            "group": GROUP,
            "tokens": MAX_TOKENS,
        }
    )
    server = [sys.executable, str(REPO / "benchmarks" / "peer_reward.py"), str(len(tasks))]
    command = [
        str(python),
        str(script),
        str(directory),
        str(work / "tasks.json"),
        str(steps),
        str(layers),
        str(work / "out"),
        *server,
    ]
    return run_peer("TRL", command, work, dict(os.environ), steps)


def run_peer(name: str, command: list[str], work: Path, env: dict, steps: int) -> dict:
    """A peer leg's figures: its script prints {"seconds", "score_seconds"} for all `steps` last."""
    result, peak = run_measured(command, work, env)
    if result.returncode:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
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
    parser.add_argument("--skip-peer", action="store_true", help="leave out the mlx-lm-lora leg")
    parser.add_argument(
        "--rfai-nproc",
        type=int,
        default=1,
        help="rfai's leg as this many ranks (`--nproc`; peak RSS is then one rank's)",
    )
    parser.add_argument("--trl", action="store_true", help="add TRL's leg (installs torch, trl and peft in --trl-venv)")
    parser.add_argument("--trl-venv", type=Path, default=Path.home() / ".cache" / "rfai" / "bench-trl-venv")
    args = parser.parse_args()
    completions = PROMPTS * GROUP
    with tempfile.TemporaryDirectory() as root:
        legs = {"rfai": rfai_leg(args.steps, args.lora_layers, Path(root), args.rfai_nproc)}
        if not args.skip_peer:
            (Path(root) / "peer").mkdir()
            legs["mlx-lm-lora"] = peer_leg(args.steps, args.lora_layers, Path(root) / "peer")
        if args.trl:
            (Path(root) / "trl").mkdir()
            legs["TRL"] = trl_leg(args.steps, args.lora_layers, Path(root) / "trl", args.trl_venv)
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
    for peer in ("mlx-lm-lora", "TRL"):
        if peer in legs:
            print(f"  rfai vs {peer}: {legs[peer]['seconds_per_step'] / legs['rfai']['seconds_per_step']:.2f}x")
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"  (measured {started})")


if __name__ == "__main__":
    main()
