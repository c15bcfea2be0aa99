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
from .activations import activation_config, activation_from_config, resolve_activation
from .base import Layer, check_dy
from .dense import check_bool, check_initializer


def check_image_shape(layer, input_shape):
    """Raise a ValueError naming ``layer`` unless the per-sample shape is (C, H, W)."""
    if len(input_shape) != 3:
        got = ", ".join(map(str, input_shape))
        raise ValueError(f"{layer.name}: expects images (N, C, H, W), got input of shape (N, {got})")


IMAGE_CHANNELS = (1, 3, 4)
"""Channel counts of stored images (grey, RGB, RGBA): what a channels-last last axis holds."""


def looks_channels_last(shape):
    """Does a per-sample image shape ``(C, H, W)`` look like a channels-last ``(H, W, C)`` image?

    The heuristic (documented in :meth:`_Conv.check_channels_first`): the last axis holds an
    image's channel count (1, 3 or 4), the first and second axes are both at least 8 and within a
    factor 4 of each other (height and width of a roughly square image). A real NCHW input with
    8+ channels whose images are 1, 3 or 4 pixels wide and about as tall as it has channels is the
    only legitimate shape this flags.
    """
    if len(shape) != 3 or any(d is None for d in shape):
        return False
    C, H, W = shape
    return W in IMAGE_CHANNELS and C >= 8 and H >= 8 and max(C, H) <= 4 * min(C, H)


class _Conv(Layer):
    """What Conv2D and Conv2DTranspose share: validated hyper-parameters, weights, bias, an
    optional activation, the rule that only the channel count is fixed by building, and the
    channels-last check of the first build from data."""

    _repr_defaults = {"kernel_init": "glorot_uniform", "bias_init": "zeros", "activation": None}

    def __init__(self, filters, kernel_size, positional, *, stride, dilation, use_bias, kernel_init, bias_init,
                 activation, name, input_shape):
        cls = type(self).__name__
        if positional:  # Keras 1's Conv2D(20, 5, 5) means a 5x5 kernel; here it would be a stride
            args = ", ".join(map(repr, (filters, kernel_size, *positional)))
            raise TypeError(
                f"{cls}({args}): the arguments after kernel_size are keyword-only. For a "
                f"{kernel_size}x{positional[0]} kernel write {cls}({filters!r}, ({kernel_size!r}, {positional[0]!r}))"
                f" (Keras 1's {cls}(filters, rows, cols)); for a stride write stride={positional[0]!r}"
            )
        super().__init__(name, input_shape)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{self.name}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = positive_pair(kernel_size, f"{self.name}: kernel_size")
        self.stride = positive_pair(stride, f"{self.name}: stride")
        self.dilation = positive_pair(dilation, f"{self.name}: dilation")
        self.use_bias = check_bool(self, "use_bias", use_bias)
        self.kernel_init = check_initializer(self, "kernel_init", kernel_init)
        self.bias_init = check_initializer(self, "bias_init", bias_init)
        self.activation = resolve_activation(activation_from_config(activation), self.name)

    def fixed_input(self, input_shape):
        return (input_shape[0], None, None)  # the weights fix the channels, not the image size

    def check_channels_first(self, input_shape):
        """Refuse a first input that looks channels-last, ``(N, H, W, C)``: read as NCHW it would
        train silently with H taken as the channel count (a 32x32x3 batch made W (K, 32, 3, 3)).

        Checked when the layer is built from data or from a model's declared input shape, not
        when a model builds it on another layer's output. The rule is :func:`looks_channels_last`:
        last axis 1, 3 or 4, first two axes >= 8 and within a factor 4. If your input really is
        ``(N, C, H, W)`` with such sizes, build the layer yourself first
        (``layer.build((C, H, W))``): a built layer is not checked again.
        """
        if not self.built and looks_channels_last(input_shape):
            H, W, C = input_shape
            raise ValueError(
                f"{self.name}: input of shape (N, {H}, {W}, {C}) looks channels-last (N, H, W, C); handprop "
                f"takes images as (N, C, H, W), as PyTorch. Transpose it: x.transpose(0, 3, 1, 2) gives "
                f"(N, {C}, {H}, {W}) (and write input_shape=({C}, {H}, {W})). If it really has {H} channels of "
                f"{W}x{C} images, build the layer first: layer.build({tuple(input_shape)})"
            )

    def _ensure_built(self, x):
        if not self.built and getattr(x, "ndim", 0) == 4:
            self.check_channels_first(tuple(x.shape[1:]))
        return super()._ensure_built(x)

    def get_config(self):
        return {"kernel_init": self.kernel_init, "bias_init": self.bias_init,
                "activation": activation_config(self.activation), **super().get_config()}

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
    activation : None or a name (``"relu"``) — applied after the convolution (Keras style).
    input_shape : (C, H, W) — on a Sequential's first layer, builds the model at once (Keras style;
        ``(3, None, None)`` for any image size). A first input that looks channels-last, e.g.
        (32, 32, 3), is refused with the transpose to apply (:meth:`check_channels_first`).

    Shapes: input (N, C, H, W) -> output (N, K, Ho, Wo) with
    ``Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1`` (likewise ``Wo``).
    Params ``"W"`` (K, C, R, S) as PyTorch, ``"b"`` (K,). Glorot fans:
    ``fan_in = C R S``, ``fan_out = K R S`` (Keras and PyTorch agree).
    """

    def __init__(self, filters, kernel_size, *positional, stride=1, padding="valid", dilation=1, use_bias=True,
                 kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None, input_shape=None):
        super().__init__(filters, kernel_size, positional, stride=stride, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, activation=activation, name=name,
                         input_shape=input_shape)
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
        y_shape = y.shape
        y, activation_cache = self._activate(y, training)
        self._cache = (cache, extra, y_shape, activation_cache)
        return y

    def backward(self, dy, need_dx=True):
        """The three gradients of the convolution, for ``dy = dL/dy`` (N, K, Ho, Wo)::

            dW[k, c, r, s] = sum_{n, i, j} dy[n, k, i, j] * xpad[n, c, i sh + r dh, j sw + s dw]
            db[k]          = sum_{n, i, j} dy[n, k, i, j]
            dxpad[n, c, i sh + r dh, j sw + s dw] += sum_k dy[n, k, i, j] * W[k, c, r, s]

        (every tap sends dy back to the pixel it read; the padding's share is dropped). ``dx`` is
        skipped when ``need_dx`` is False. The reference engine writes these sums as loops. With an
        ``activation``, ``dy`` is first taken back through it.
        """
        cache, extra, y_shape, activation_cache = self._cached()
        check_dy(self, dy, y_shape)
        dy = self._activation_backward(dy, activation_cache)
        conv2d_backward = get_kernel("conv2d_backward", dy)
        dx, self.grads["W"], db = conv2d_backward(dy, cache, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        if dx is not None and extra != (0, 0):
            dx = dx[:, :, : dx.shape[2] - extra[0], : dx.shape[3] - extra[1]].copy()
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation, "use_bias": self.use_bias, **super().get_config()}


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

    def __init__(self, filters, kernel_size, *positional, stride=1, padding=0, output_padding=0, dilation=1,
                 use_bias=True, kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None,
                 input_shape=None):
        super().__init__(filters, kernel_size, positional, stride=stride, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, activation=activation, name=name,
                         input_shape=input_shape)
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
        y, activation_cache = self._activate(y, training)
        self._cache = (cache, y_shape, activation_cache)
        return y

    def backward(self, dy, need_dx=True):
        """``dx = A dy``: a convolution of dy with W (stride, padding, dilation as this layer's);
        ``dW[c, k, r, s] = sum_{n, i, j} x[n, c, i, j] * dypad[n, k, i sh + r dh, j sw + s dw]``;
        ``db = dy`` summed over (n, i, j). With an ``activation``, ``dy`` is first taken back through it."""
        cache, y_shape, activation_cache = self._cached()
        check_dy(self, dy, y_shape)
        dy = self._activation_backward(dy, activation_cache)
        transpose_backward = get_kernel("conv2d_transpose_backward", dy)
        dx, self.grads["W"], db = transpose_backward(dy, cache, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "output_padding": self.output_padding, "dilation": self.dilation,
                "use_bias": self.use_bias, **super().get_config()}


Convolution2D = Conv2D  # Keras 1's name (its Convolution2D(20, 5, 5) is Conv2D(20, (5, 5)) here)
