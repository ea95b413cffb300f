"""The MLX engine: model loading (with the embedded default), batched generation, log-probs.

Importing this package preloads the system OpenBLAS on Linux (see `blas`), so it must be
imported before anything else imports mlx; the submodules import mlx themselves.
"""

from .blas import preload_openblas

preload_openblas()
