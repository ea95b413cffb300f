"""`rfai train`: on-policy GRPO with LoRA in MLX (`loop.run_train`), its arithmetic (`grpo`) and
exact-resume checkpoints (`checkpoint`)."""
