"""Where MLX computes, and the weight format that is fastest there.

On CPU (Linux without a GPU) MLX's float16/bfloat16 and quantized matmul kernels are 5-20x
slower than float32 ones, so models run in float32 there. On a GPU (Apple silicon, CUDA) models
are kept as stored, quantized weights included: memory bandwidth is what limits them.
"""

from __future__ import annotations


def on_cpu() -> bool:
    import mlx.core as mx

    return mx.default_device().type != mx.DeviceType.gpu


def fit_to_device(model) -> None:
    """On CPU, dequantize and cast floating parameters to float32 (in place); on a GPU, do nothing."""
    from mlx.utils import tree_map
    from mlx_lm.utils import dequantize_model

    if not on_cpu():
        return
    # Scales and biases first, so the dequantized weights come out in float32 directly.
    model.update(tree_map(to_float32, model.parameters()))
    dequantize_model(model)


def to_float32(array):
    """`array` as float32 if it is a floating array of another precision; anything else unchanged."""
    import mlx.core as mx

    if mx.issubdtype(array.dtype, mx.floating) and array.dtype != mx.float32:
        return array.astype(mx.float32)
    return array
