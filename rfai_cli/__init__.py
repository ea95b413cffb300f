"""rfai: reinforcement learning from AI feedback for small code models, in MLX, with Hugging Face datasets."""

__version__ = "0.1.0"
DEFAULT_CONFIG_FILE = "config.yaml"  # read from the working directory when --config is not given
