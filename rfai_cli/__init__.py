"""rfai: reinforcement learning from AI feedback for small code models, in MLX, with Hugging Face datasets."""

__version__ = "0.1.0"
