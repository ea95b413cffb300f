"""`rfai train`: on-policy GRPO with LoRA in MLX (`loop.run_train`), its arithmetic (`grpo`) and
exact-resume checkpoints (`checkpoint`).

Importing the package preloads OpenBLAS before any of its modules imports mlx (MLX's CPU matmuls
are several times slower without it; see engine/blas.py).
"""

from .. import engine  # noqa: F401
