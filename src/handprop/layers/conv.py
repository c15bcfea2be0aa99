"""Convolution layers (NCHW): ``Conv2D`` and its adjoint ``Conv2DTranspose``.

The arithmetic lives in the kernels (:mod:`handprop.kernels`, see ``reference.py`` for the loops);
these classes hold the weights, resolve the padding and route the gradients. The kernel engine
is picked per call from the array type and ``hp.set_engine`` (:func:`handprop.kernels.get_kernel`).

Convolution, for x (N, C, H, W), weights W (K, C, R, S) and bias b (K,)::

    y[n, k, i, j] = b[k] + sum_{c, r, s} W[k, c, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

    Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1        Wo likewise

Backward, given dy = dL/dy (N, K, Ho, Wo)::

    dx = conv2d_backward_input(dy, W)      every tap sends dy back to the pixel it read
    dW = conv2d_backward_weight(dy, x)     dy times the pixel each weight multiplied, summed
    db = dy.sum over (n, i, j)
"""

from __future__ import annotations

import numpy as np

from .. import init
from ..backend import get_array_module
from ..kernels import get_kernel, get_optional
from ..kernels.reference import output_size
from .base import Layer, check_dy, pair


def check_image_shape(layer, input_shape):
    """Raise a ValueError naming ``layer`` unless the per-sample shape is (C, H, W)."""
    if len(input_shape) != 3:
        got = ", ".join(map(str, input_shape))
        raise ValueError(f"{layer.name}: expects images (N, C, H, W), got input of shape (N, {got})")


def _positive_pair(layer, value, what, minimum=1):
    p = pair(value, f"{layer.name}: {what}")
    if min(p) < minimum:
        raise ValueError(f"{layer.name}: {what} must be >= {minimum}, got {value!r}")
    return p


def _set_conv_hyperparameters(layer, filters, kernel_size, stride, dilation, use_bias, kernel_init, bias_init):
    """Validate and store what Conv2D and Conv2DTranspose share (errors name the layer)."""
    if not isinstance(filters, (int, np.integer)) or filters <= 0:
        raise ValueError(f"{layer.name}: filters must be a positive int, got {filters!r}")
    layer.filters = int(filters)
    layer.kernel_size = _positive_pair(layer, kernel_size, "kernel_size")
    layer.stride = _positive_pair(layer, stride, "stride")
    layer.dilation = _positive_pair(layer, dilation, "dilation")
    layer.use_bias = use_bias
    layer.kernel_init = kernel_init
    layer.bias_init = bias_init


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as every deep-learning library), NCHW.

    Parameters
    ----------
    filters : int — number of output channels ``K``.
    kernel_size : int or (R, S).
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

    def __init__(
        self,
        filters,
        kernel_size,
        stride=1,
        padding="valid",
        dilation=1,
        use_bias=True,
        kernel_init="glorot_uniform",
        bias_init="zeros",
        name=None,
    ):
        super().__init__(name)
        _set_conv_hyperparameters(self, filters, kernel_size, stride, dilation, use_bias, kernel_init, bias_init)
        self.padding = padding
        self.pad = self._resolve_padding(padding)
        self._extra = (0, 0)  # asymmetric part of "same" padding, set by compute_output_shape

    def _resolve_padding(self, padding):
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            return (0, 0)  # set from the input size by compute_output_shape (see _same_padding)
        if isinstance(padding, str):
            raise ValueError(f"{self.name}: padding must be 'valid', 'same', int or pair, got {padding!r}")
        return _positive_pair(self, padding, "padding", minimum=0)

    def _same_padding(self, H, Wd):
        """``((top, left), (extra_bottom, extra_right))`` for ``padding="same"`` on an H×W input."""
        sym, extra = [], []
        for size, k, s, d in zip((H, Wd), self.kernel_size, self.stride, self.dilation):
            out = -(-size // s)  # ceil(size / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
            sym.append(total // 2)
            extra.append(total % 2)
        return tuple(sym), tuple(extra)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        _, H, Wd = input_shape
        self._extra = (0, 0)
        if self.padding == "same":
            self.pad, self._extra = self._same_padding(H, Wd)
        H, Wd = H + self._extra[0], Wd + self._extra[1]
        (R, S), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.pad, self.dilation
        Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.name}: input (C, H, W) = {tuple(input_shape)} is too small for kernel {(R, S)} "
                f"with stride {self.stride}, padding {self.pad}, dilation {self.dilation}: "
                f"output would be {(self.filters, Ho, Wo)}"
            )
        return (self.filters, Ho, Wo)

    def build(self, input_shape, rng=None, dtype=np.float32):
        out = super().build(input_shape, rng, dtype)
        rng = init.make_rng(rng)
        shape = (self.filters, self.input_shape[0], *self.kernel_size)  # (K, C, R, S)
        self.params["W"] = init.get(self.kernel_init)(shape, rng, dtype=self.dtype)
        if self.use_bias:
            self.params["b"] = init.get(self.bias_init)((self.filters,), rng, dtype=self.dtype)
        self.zero_grads()
        return out

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        if self._extra != (0, 0):  # the odd row/column of asymmetric "same" padding
            x = get_array_module(x).pad(x, ((0, 0), (0, 0), (0, self._extra[0]), (0, self._extra[1])))
        self._x = x
        self._cols = None
        args = (x, self.params["W"], self.params.get("b"), self.stride, self.pad, self.dilation)
        # An engine may hand back the columns it packed (im2col), which the weight gradient
        # needs again: only in training, and only when small (the numba engine: <= 16 MB).
        with_cols = get_optional("conv2d_forward_cols", x) if training else None
        if with_cols is not None:
            y, self._cols = with_cols(*args)
            return y
        return get_kernel("conv2d_forward", x)(*args)

    def backward(self, dy):
        x, W = self._x, self.params["W"]
        check_dy(self, dy, (x.shape[0], *self.output_shape))
        geometry = (self.stride, self.pad, self.dilation)
        cols, self._cols = self._cols, None  # used once, then freed
        from_cols = get_optional("conv2d_backward_weight_cols", dy) if cols is not None else None
        if from_cols is not None and cols.dtype == dy.dtype:
            self.grads["W"], db = from_cols(dy, cols, W.shape)
            if self.use_bias:
                self.grads["b"] = db
        else:
            self.grads["W"] = get_kernel("conv2d_backward_weight", dy)(dy, x, W.shape, *geometry)
            if self.use_bias:
                bias_grad = get_optional("conv2d_backward_bias", dy)
                self.grads["b"] = bias_grad(dy) if bias_grad else dy.sum(axis=(0, 2, 3))
        if not self.need_input_grad:  # first layer of a model: dx is never used
            return None
        dx = get_kernel("conv2d_backward_input", dy)(dy, W, x.shape, *geometry)
        if self._extra != (0, 0):
            dx = dx[:, :, : dx.shape[2] - self._extra[0], : dx.shape[3] - self._extra[1]].copy()
        return dx

    def get_config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "use_bias": self.use_bias,
        }


class Conv2DTranspose(Layer):
    """Transposed convolution ("deconvolution", learned upsampling), as PyTorch's ConvTranspose2d.

    **Duality.** A convolution is linear, ``y = A x``; its input gradient is ``dx = A^T dy``. A
    transposed convolution *is* that ``A^T`` applied forward: it maps a small (N, C_in, H, W)
    image to the large shape the convolution would have read. So with the same weight tensor::

        forward   y  = conv2d_backward_input(x, W)      A^T x  (each input pixel stamps W, scaled)
        backward  dx = conv2d_forward(dy, W)            (A^T)^T dy = A dy
                  dW = conv2d_backward_weight(x, dy)    roles of "dy" and "x" swap
                  db = dy.sum over (n, i, j)

    Parameters
    ----------
    filters : int — output channels ``K``.
    kernel_size, stride, dilation : int or pair.
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

    def __init__(
        self,
        filters,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        dilation=1,
        use_bias=True,
        kernel_init="glorot_uniform",
        bias_init="zeros",
        name=None,
    ):
        super().__init__(name)
        _set_conv_hyperparameters(self, filters, kernel_size, stride, dilation, use_bias, kernel_init, bias_init)
        self.padding = _positive_pair(self, padding, "padding", minimum=0)
        self.output_padding = _positive_pair(self, output_padding, "output_padding", minimum=0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride, strict=True)):
            raise ValueError(
                f"{self.name}: output_padding {self.output_padding} must be smaller than stride {self.stride}"
            )

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        _, H, Wd = input_shape
        (R, S), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        (dh, dw), (oh, ow) = self.dilation, self.output_padding
        Ho = (H - 1) * sh - 2 * ph + dh * (R - 1) + oh + 1
        Wo = (Wd - 1) * sw - 2 * pw + dw * (S - 1) + ow + 1
        if H < 1 or Wd < 1 or Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.name}: input (C, H, W) = {tuple(input_shape)} with kernel {(R, S)}, stride "
                f"{self.stride}, padding {self.padding}: output would be {(self.filters, Ho, Wo)}"
            )
        return (self.filters, Ho, Wo)

    def build(self, input_shape, rng=None, dtype=np.float32):
        out = super().build(input_shape, rng, dtype)
        rng = init.make_rng(rng)
        C_in, K, (R, S) = self.input_shape[0], self.filters, self.kernel_size
        fans = (K * R * S, C_in * R * S)
        self.params["W"] = init.get(self.kernel_init)((C_in, K, R, S), rng, dtype=self.dtype, fans=fans)
        if self.use_bias:
            self.params["b"] = init.get(self.bias_init)((K,), rng, dtype=self.dtype)
        self.zero_grads()
        return out

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._x = x
        W = self.params["W"]
        y_shape = (x.shape[0], *self.output_shape)
        transposed = get_kernel("conv2d_backward_input", x)
        y = transposed(x, W, y_shape, self.stride, self.padding, self.dilation)
        if self.use_bias:
            y += self.params["b"].reshape(1, -1, 1, 1)
        return y

    def backward(self, dy):
        x, W = self._x, self.params["W"]
        check_dy(self, dy, (x.shape[0], *self.output_shape))
        geometry = (self.stride, self.padding, self.dilation)
        dx = get_kernel("conv2d_forward", dy)(dy, W, None, *geometry)
        self.grads["W"] = get_kernel("conv2d_backward_weight", dy)(x, dy, W.shape, *geometry)
        if self.use_bias:
            self.grads["b"] = dy.sum(axis=(0, 2, 3))
        return dx

    def get_config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation": self.dilation,
            "use_bias": self.use_bias,
        }
