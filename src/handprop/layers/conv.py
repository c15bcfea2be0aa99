"""Convolution layers (NCHW): ``Conv2D`` and its adjoint ``Conv2DTranspose``.

The arithmetic lives in the kernels (:mod:`handprop.kernels`; ``reference.py`` has the loops);
these classes hold the weights, work out the geometry and hand the engine's cache from forward to
backward. The engine is picked per call from the array type and ``hp.set_engine``.

Convolution, for x (N, C, H, W), weights W (K, C, R, S) and bias b (K,)::

    y[n, k, i, j] = b[k] + sum_{c, r, s} W[k, c, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

    Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1        Wo likewise

Building fixes only the input channels ``C`` (the weights' second axis): the same layer runs on
any image at least as large as its kernel.
"""

from __future__ import annotations

import numpy as np

from .. import init
from ..backend import get_array_module
from ..kernels import get_kernel
from ..kernels.geometry import ConvGeometry, output_size, positive_pair, same_padding
from .base import Layer, check_dy


def check_image_shape(layer, input_shape):
    """Raise a ValueError naming ``layer`` unless the per-sample shape is (C, H, W)."""
    if len(input_shape) != 3:
        got = ", ".join(map(str, input_shape))
        raise ValueError(f"{layer.name}: expects images (N, C, H, W), got input of shape (N, {got})")


class _Conv(Layer):
    """What Conv2D and Conv2DTranspose share: validated hyper-parameters, weights, bias and the
    rule that only the channel count is fixed by building."""

    def __init__(self, filters, kernel_size, *, stride, dilation, use_bias, kernel_init, bias_init, name):
        super().__init__(name)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{self.name}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = positive_pair(kernel_size, f"{self.name}: kernel_size")
        self.stride = positive_pair(stride, f"{self.name}: stride")
        self.dilation = positive_pair(dilation, f"{self.name}: dilation")
        self.use_bias = bool(use_bias)
        self.kernel_init = kernel_init
        self.bias_init = bias_init

    def fixed_input(self, input_shape):
        return (input_shape[0], None, None)  # the weights fix the channels, not the image size

    def _weight_shape_and_fans(self, channels):
        raise NotImplementedError

    def create_params(self, rng):
        shape, fans = self._weight_shape_and_fans(self.input_shape[0])
        self.params["W"] = init.get(self.kernel_init)(shape, rng, dtype=self.dtype, fans=fans)
        if self.use_bias:
            self.params["b"] = init.get(self.bias_init)((self.filters,), rng, dtype=self.dtype)

    def _too_small(self, input_shape, out, padding):
        raise ValueError(
            f"{self.name}: input (C, H, W) = {tuple(input_shape)} is too small for kernel {self.kernel_size} "
            f"with stride {self.stride}, padding {padding}, dilation {self.dilation}: output would be {out}"
        )


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as every deep-learning library), NCHW.

    Parameters
    ----------
    filters : int — number of output channels ``K``.
    kernel_size : int or (R, S).
    stride, padding, dilation, use_bias, kernel_init, bias_init, name : keyword only (so that
        Keras 1's ``Conv2D(20, 5, 5)``, meaning a 5×5 kernel, is an error, not a stride of 5).
    stride : int or (sh, sw).
    padding : ``"valid"`` (no padding), ``"same"`` or int or (ph, pw) — symmetric zero padding.
        ``"same"`` gives ``Ho = ceil(H / sh)`` (``= H`` at stride 1), as Keras and PyTorch: the
        total padding ``(Ho - 1) sh + dh (R - 1) + 1 - H`` is split with the odd pixel at the
        bottom/right. The kernels take symmetric padding, so the layer pads that one extra
        row/column itself (and crops it from ``dx``) — only for an even effective kernel or a stride.
    dilation : int or (dh, dw) — spacing between taps (1 = ordinary convolution); the effective
        kernel size is ``dh (R - 1) + 1``, the receptive field grows without more weights.
    use_bias, kernel_init, bias_init, name — as :class:`handprop.layers.Dense`.

    Shapes: input (N, C, H, W) -> output (N, K, Ho, Wo) with
    ``Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1`` (likewise ``Wo``).
    Params ``"W"`` (K, C, R, S) as PyTorch, ``"b"`` (K,). Glorot fans:
    ``fan_in = C R S``, ``fan_out = K R S`` (Keras and PyTorch agree).
    """

    def __init__(self, filters, kernel_size, *, stride=1, padding="valid", dilation=1, use_bias=True,
                 kernel_init="glorot_uniform", bias_init="zeros", name=None):
        super().__init__(filters, kernel_size, stride=stride, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, name=name)
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"{self.name}: padding must be 'valid', 'same', int or pair, got {padding!r}")
        self.padding = padding if isinstance(padding, str) else positive_pair(padding, f"{self.name}: padding", 0)

    def _weight_shape_and_fans(self, channels):
        R, S = self.kernel_size
        return (self.filters, channels, R, S), (channels * R * S, self.filters * R * S)

    def geometry(self, H, Wd):
        """``(ConvGeometry, extra)`` for an H × W input: the symmetric padding the kernels apply,
        and the extra bottom/right row/column of asymmetric "same" padding that the layer adds."""
        if self.padding == "same":
            (ph, eh), (pw, ew) = (same_padding(n, k, s, d) if n is not None else (0, 0)
                                  for n, k, s, d in zip((H, Wd), self.kernel_size, self.stride, self.dilation))
            return ConvGeometry(self.stride, (ph, pw), self.dilation), (eh, ew)
        return ConvGeometry(self.stride, (0, 0) if self.padding == "valid" else self.padding, self.dilation), (0, 0)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        _, H, Wd = input_shape
        if self.padding == "same":  # ceil(size / stride), whatever the kernel
            Ho, Wo = (None if n is None else -(-n // s) for n, s in zip((H, Wd), self.stride))
            return (self.filters, Ho, Wo)
        (R, S), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.geometry(H, Wd)[0].padding, \
            self.dilation
        Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
        if (Ho is not None and Ho < 1) or (Wo is not None and Wo < 1):
            self._too_small(input_shape, (self.filters, Ho, Wo), (ph, pw))
        return (self.filters, Ho, Wo)

    def forward(self, x, training=True):
        """``y = conv2d(x, W) + b`` (module docstring); the engine returns y and its cache."""
        x = self._ensure_built(x)
        geometry, extra = self.geometry(*x.shape[2:])
        if extra != (0, 0):  # the odd row/column of asymmetric "same" padding
            x = get_array_module(x).pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        conv2d_forward = get_kernel("conv2d_forward", x)
        y, cache = conv2d_forward(x, self.params["W"], self.params.get("b"), geometry, training)
        self._cache = (cache, extra, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """The three gradients of the convolution, for ``dy = dL/dy`` (N, K, Ho, Wo)::

            dW[k, c, r, s] = sum_{n, i, j} dy[n, k, i, j] * xpad[n, c, i sh + r dh, j sw + s dw]
            db[k]          = sum_{n, i, j} dy[n, k, i, j]
            dxpad[n, c, i sh + r dh, j sw + s dw] += sum_k dy[n, k, i, j] * W[k, c, r, s]

        (every tap sends dy back to the pixel it read; the padding's share is dropped). ``dx`` is
        skipped when ``need_dx`` is False. The reference engine writes these sums as loops.
        """
        cache, extra, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        conv2d_backward = get_kernel("conv2d_backward", dy)
        dx, self.grads["W"], db = conv2d_backward(dy, cache, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        if dx is not None and extra != (0, 0):
            dx = dx[:, :, : dx.shape[2] - extra[0], : dx.shape[3] - extra[1]].copy()
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation, "use_bias": self.use_bias}


class Conv2DTranspose(_Conv):
    """Transposed convolution ("deconvolution", learned upsampling), as PyTorch's ConvTranspose2d.

    **Duality.** A convolution is linear, ``y = A x``; its input gradient is ``dx = A^T dy``. A
    transposed convolution *is* that ``A^T`` applied forward: it maps a small (N, C_in, H, W)
    image to the large shape the convolution would have read. So with the same weight tensor::

        forward   y  = A^T x      (each input pixel stamps W, scaled by its value)
        backward  dx = A dy       (an ordinary convolution of dy)
                  dW = the convolution's weight gradient with the roles of "dy" and "x" swapped
                  db = dy.sum over (n, i, j)

    Parameters
    ----------
    filters : int — output channels ``K``.
    kernel_size : int or pair; the rest keyword only.
    stride, dilation : int or pair.
    padding : int or (ph, pw) — removes ``ph`` rows on each side of the output (PyTorch meaning).
    output_padding : int or pair — extra rows/columns at the bottom/right, to pick among the
        output sizes that a strided convolution maps to the same input size. Must be smaller
        than the stride (PyTorch also allows it below the dilation; handprop does not).
    use_bias, kernel_init, bias_init, name — as :class:`Conv2D`.

    Shapes: (N, C_in, H, W) -> (N, K, Ho, Wo) with
    ``Ho = (H - 1) sh - 2 ph + dh (R - 1) + oph + 1`` (likewise ``Wo``).
    Params ``"W"`` (C_in, K, R, S) as PyTorch, ``"b"`` (K,). Glorot fans ``fan_in = K R S``,
    ``fan_out = C_in R S``: PyTorch's rule (dimension 1 is the fan-in), which Keras' Conv2DTranspose
    kernel ``(R, S, K, C_in)`` gives as well.
    """

    def __init__(self, filters, kernel_size, *, stride=1, padding=0, output_padding=0, dilation=1, use_bias=True,
                 kernel_init="glorot_uniform", bias_init="zeros", name=None):
        super().__init__(filters, kernel_size, stride=stride, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, name=name)
        self.padding = positive_pair(padding, f"{self.name}: padding", 0)
        self.output_padding = positive_pair(output_padding, f"{self.name}: output_padding", 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride, strict=True)):
            raise ValueError(
                f"{self.name}: output_padding {self.output_padding} must be smaller than stride {self.stride}"
            )

    def _weight_shape_and_fans(self, channels):
        R, S = self.kernel_size
        return (channels, self.filters, R, S), (self.filters * R * S, channels * R * S)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        _, H, Wd = input_shape
        sizes = []
        for n, k, s, p, d, op in zip((H, Wd), self.kernel_size, self.stride, self.padding, self.dilation,
                                     self.output_padding):
            sizes.append(None if n is None else (n - 1) * s - 2 * p + d * (k - 1) + op + 1)
        if any(n is not None and n < 1 for n in sizes):
            self._too_small(input_shape, (self.filters, *sizes), self.padding)
        return (self.filters, *sizes)

    def forward(self, x, training=True):
        """``y = A^T x + b`` (the class docstring); the engine returns y and its cache."""
        x = self._ensure_built(x)
        y_shape = (x.shape[0], *self.compute_output_shape(x.shape[1:]))
        geometry = ConvGeometry(self.stride, self.padding, self.dilation)
        transpose_forward = get_kernel("conv2d_transpose_forward", x)
        y, cache = transpose_forward(x, self.params["W"], self.params.get("b"), geometry, y_shape, training)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """``dx = A dy``: a convolution of dy with W (stride, padding, dilation as this layer's);
        ``dW[c, k, r, s] = sum_{n, i, j} x[n, c, i, j] * dypad[n, k, i sh + r dh, j sw + s dw]``;
        ``db = dy`` summed over (n, i, j)."""
        cache, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        transpose_backward = get_kernel("conv2d_transpose_backward", dy)
        dx, self.grads["W"], db = transpose_backward(dy, cache, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "output_padding": self.output_padding, "dilation": self.dilation,
                "use_bias": self.use_bias}
