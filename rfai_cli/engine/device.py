"""Where MLX computes, and the weight format that is fastest there.

On CPU (Linux without a GPU) MLX's float16/bfloat16 and quantized matmul kernels are 5-20x
slower than float32 ones, so models run in float32 there. On a GPU (Apple silicon, CUDA) models
are kept as stored, quantized weights included: memory bandwidth is what limits them.
"""

from __future__ import annotations


def on_cpu() -> bool:
    import mlx.core as mx

    return mx.default_device().type != mx.DeviceType.gpu


def fit_to_device(model, keep_quantized: bool | None = None) -> None:
    """On CPU, cast floating parameters to float32 and dequantize (in place) unless
    `keep_quantized`; on a GPU, do nothing unless `keep_quantized` is False (then dequantize,
    keeping the stored precision). None: the faster for the device (docs/models.md)."""
    from mlx.utils import tree_map
    from mlx_lm.utils import dequantize_model

    keep = not on_cpu() if keep_quantized is None else keep_quantized
    if on_cpu():
        # Scales and biases too, so dequantized weights come out in float32 directly.
        model.update(tree_map(to_float32, model.parameters()))
    if not keep:
        dequantize_model(model)


def to_float32(array):
    """`array` as float32 if it is a floating array of another precision; anything else unchanged."""
    import mlx.core as mx

    if mx.issubdtype(array.dtype, mx.floating) and array.dtype != mx.float32:
        return array.astype(mx.float32)
    return array
