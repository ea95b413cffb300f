"""The MLX engine: model loading (with the embedded default), batched generation, log-probs.

Importing this package preloads the system OpenBLAS on Linux (see `blas`) and makes sure MLX
has a usable temporary directory (see `tempdir`), so it must be imported before anything else
imports mlx; the submodules import mlx themselves.
"""

from .blas import preload_openblas
from .tempdir import usable_temp_dir

preload_openblas()
usable_temp_dir()
