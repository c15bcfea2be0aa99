"""Pooling layers: ``MaxPool2D``, ``AvgPool2D``, ``GlobalAvgPool2D`` (NCHW) and ``MaxPool3D``,
``AvgPool3D`` (NCDHW: the same windows with a depth axis).

A window of ``R x S`` pixels slides over each channel with stride ``(sh, sw)``; the output size is
the convolution's::

    Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1        (likewise Wo; dilation dh = 1 by default)

A dilated window (``dilation=2``: every other pixel) is what a pooling layer becomes when a patch
classifier is turned into a fully convolutional network that scores every pixel
(:func:`handprop.inference.to_fully_convolutional`).

* max pooling keeps the largest pixel of each window; its gradient flows only to that pixel
  (``argmax``, cached by forward). Ties go to the first maximum in row-major window order.
* average pooling takes the mean; each pixel of a window receives ``dy / (R S)``. Padding zeros
  count in the mean (PyTorch's default ``count_include_pad=True``).
* global average pooling averages each whole channel: (N, C, H, W) -> (N, C).

Padding is at most half the window (PyTorch's rule), and no window may read padding only (a
dilated window stepping over a tiny input is refused, where PyTorch returns ``-inf``).
"""

from __future__ import annotations

from ..backend import get_array_module
from ..kernels import get_kernel
from ..kernels.geometry import PoolGeometry, check_pool_geometry, check_pool_padding, output_size, positive_tuple
from .base import Layer, check_dy
from .conv import check_image_shape


class _Pool(Layer):
    """Shared hyper-parameters and shape logic of max and average pooling (any image size), for
    ``spatial_dims`` axes (2: images, 3: volumes); ``kernels`` names the engine's pair."""

    spatial_dims = 2
    kernels = ("maxpool2d_forward", "maxpool2d_backward")

    _repr_defaults = {"dilation": (1, 1)}

    def __init__(self, pool_size=2, stride=None, padding=0, *, dilation=1, name=None, input_shape=None):
        super().__init__(name, input_shape)
        n = self.spatial_dims
        self.pool_size = positive_tuple(pool_size, n, f"{self.name}: pool_size")
        self.stride = self.pool_size if stride is None else positive_tuple(stride, n, f"{self.name}: stride")
        self.padding = positive_tuple(padding, n, f"{self.name}: padding", minimum=0)
        self.dilation = positive_tuple(dilation, n, f"{self.name}: dilation")
        try:
            check_pool_padding(self.pool_size, self.padding)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        self.geometry = PoolGeometry(self.pool_size, self.stride, self.padding, self.dilation)

    def fixed_input(self, input_shape):
        return (None,) * (self.spatial_dims + 1)  # images of any channel count and size

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape, self.spatial_dims)
        C, *sizes = input_shape
        out = tuple(output_size(*a) for a in zip(sizes, *self.geometry, strict=True))
        if any(o is not None and o < 1 for o in out):
            raise ValueError(
                f"{self.name}: input {tuple(input_shape)} is smaller than the pool {self.pool_size} with padding "
                f"{self.padding} and dilation {self.dilation}: output would be {(C, *out)}"
            )
        try:
            check_pool_geometry(sizes, self.geometry)  # a dilated window over a tiny input: padding only
        except ValueError as e:
            raise ValueError(f"{self.name}: input {tuple(input_shape)}: {e}") from None
        return (C, *out)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, cache = get_kernel(self.kernels[0], x)(x, self.geometry, training)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        cache, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        return get_kernel(self.kernels[1], dy)(dy, cache) if need_dx else None

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                **super().get_config()}


class MaxPool2D(_Pool):
    """Max pooling: ``y[n, c, i, j] = max over the window``; ``dx`` routes ``dy`` to the winner.

    ``MaxPool2D(pool_size=2, stride=None, padding=0, *, dilation=1, name=None, input_shape=None)``:
    stride defaults to the pool size (non-overlapping windows). Padding is ``-inf`` and never wins.
    The engine's cache holds ``argmax`` (the winner's flat index ``h * W + w`` per output) and the
    input shape.
    """

    kernels = ("maxpool2d_forward", "maxpool2d_backward")

    def backward(self, dy, need_dx=True):
        """dL/dx of max pooling.

        Each output's gradient goes to the pixel that won its window; shared winners add up::

            dx[n, c, h, w] = sum over outputs (i, j) whose window's maximum was (h, w) of dy[n, c, i, j]
        """
        return super().backward(dy, need_dx)


class AvgPool2D(_Pool):
    """Average pooling: ``y[n, c, i, j] = sum over the window / (R S)`` (padding zeros count).

    ``AvgPool2D(pool_size=2, stride=None, padding=0, *, dilation=1, name=None, input_shape=None)``;
    the cache is the input shape and the geometry.
    """

    kernels = ("avgpool2d_forward", "avgpool2d_backward")

    def backward(self, dy, need_dx=True):
        """dL/dx of average pooling.

        Each pixel of a window receives an equal share::

            dxpad[n, c, i sh + r dh, j sw + s dw] += dy[n, c, i, j] / (R S)      for every tap (r, s)
        """
        return super().backward(dy, need_dx)


class MaxPool3D(_Pool):
    """Max pooling of volumes (N, C, D, H, W), PyTorch's ``MaxPool3d``: the max over each
    ``T x R x S`` window; ``dx`` routes ``dy`` to the winner (ties: the first in row-major window
    order). ``MaxPool3D(pool_size=2, stride=None, padding=0, *, dilation=1, name=None,
    input_shape=None)``, ints or (depth, height, width) triples; padding at most half the window,
    ``-inf`` (never wins)."""

    spatial_dims = 3
    _repr_defaults = {"dilation": (1, 1, 1)}
    kernels = ("maxpool3d_forward", "maxpool3d_backward")


class AvgPool3D(_Pool):
    """Average pooling of volumes (N, C, D, H, W): the mean over each ``T x R x S`` window, padding
    zeros counted (PyTorch's ``AvgPool3d`` default); each voxel of a window receives ``dy / (T R S)``.
    Arguments as :class:`MaxPool3D`'s. (PyTorch's ``AvgPool3d`` has no dilation; here it spaces the
    taps as a convolution's, as for :class:`AvgPool2D`.)"""

    spatial_dims = 3
    _repr_defaults = {"dilation": (1, 1, 1)}
    kernels = ("avgpool3d_forward", "avgpool3d_backward")


MaxPooling2D = MaxPool2D  # Keras's names
AveragePooling2D = AvgPool2D
MaxPooling3D = MaxPool3D
AveragePooling3D = AvgPool3D


class GlobalAvgPool2D(Layer):
    """``y[n, c] = mean over (h, w) of x[n, c, h, w]``: (N, C, H, W) -> (N, C), any H × W.

    Backward spreads each ``dy[n, c]`` evenly: ``dx[n, c, h, w] = dy[n, c] / (H W)``.
    """

    def fixed_input(self, input_shape):
        return (None, None, None)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (input_shape[0],)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy, need_dx=True):
        N, C, H, Wd = self._cached()
        check_dy(self, dy, (N, C))
        if not need_dx:
            return None
        dx = get_array_module(dy).empty((N, C, H, Wd), dtype=dy.dtype)
        dx[...] = (dy / (H * Wd))[:, :, None, None]
        return dx
