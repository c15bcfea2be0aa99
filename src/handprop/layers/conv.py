"""Convolution layers: ``Conv2D`` (NCHW), ``Conv3D`` (NCDHW), ``DepthwiseConv2D`` and the adjoint
``Conv2DTranspose``.

The arithmetic lives in the kernels (:mod:`handprop.kernels`; ``reference.py`` has the loops);
these classes hold the weights, work out the geometry and hand the engine's cache from forward to
backward. The engine is picked per call from the array type and ``hp.set_engine``.

Convolution, for x (N, C, H, W), weights W (K, C, R, S) and bias b (K,)::

    y[n, k, i, j] = b[k] + sum_{c, r, s} W[k, c, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

    Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1        Wo likewise

A 3-D convolution adds a depth index to every array (x (N, C, D, H, W), W (K, C, T, R, S)) and
the same rule along it. Building fixes only the input channels ``C`` (the weights' second axis):
the same layer runs on any image (volume) at least as large as its kernel.
"""

from __future__ import annotations

import numpy as np

from .. import init
from ..backend import get_array_module
from ..kernels import get_kernel
from ..kernels.geometry import ConvGeometry, output_size, positive_tuple, same_padding
from .activations import activation_config, activation_from_config, resolve_activation
from .base import Layer, check_dy
from .dense import check_bool, check_initializer

_LAYOUTS = {2: "images (N, C, H, W)", 3: "volumes (N, C, D, H, W)"}


def check_image_shape(layer, input_shape, spatial_dims=2):
    """Raise a ValueError naming ``layer`` unless the per-sample shape is (C, H, W) -- or
    (C, D, H, W) with ``spatial_dims=3``."""
    if len(input_shape) != spatial_dims + 1:
        got = ", ".join(map(str, input_shape))
        raise ValueError(f"{layer.name}: expects {_LAYOUTS[spatial_dims]}, got input of shape (N, {got})")


IMAGE_CHANNELS = (1, 3, 4)
"""Channel counts of stored images (grey, RGB, RGBA): what a channels-last last axis holds."""


def looks_channels_last(shape):
    """Does a per-sample image shape ``(C, H, W)`` look like a channels-last ``(H, W, C)`` image
    (a volume's ``(C, D, H, W)`` like ``(D, H, W, C)``)?

    The heuristic (documented in :meth:`_Conv.check_channels_first`): the last axis holds an
    image's channel count (1, 3 or 4), the other axes are all at least 8 and within a factor 4 of
    each other (height and width of a roughly square image). A real NCHW input with 8+ channels
    whose images are 1, 3 or 4 pixels wide and about as tall as it has channels is the only
    legitimate shape this flags.
    """
    if len(shape) not in (3, 4) or any(d is None for d in shape):
        return False
    *sizes, last = shape
    return last in IMAGE_CHANNELS and min(sizes) >= 8 and max(sizes) <= 4 * min(sizes)


class _Conv(Layer):
    """What every convolution shares: validated hyper-parameters (one entry per spatial axis),
    weights, bias, an optional activation, the rule that only the channel count is fixed by
    building, and the channels-last check of the first build from data."""

    spatial_dims = 2
    """2 for images (NCHW), 3 for volumes (NCDHW): the length of kernel_size, stride, ..."""

    _repr_defaults = {"kernel_init": "glorot_uniform", "bias_init": "zeros", "activation": None}

    def __init__(self, filters, kernel_size, positional, *, stride, dilation, use_bias, kernel_init, bias_init,
                 activation, name, input_shape):
        if positional:  # Keras 1's Conv2D(20, 5, 5) means a 5x5 kernel; here it would be a stride
            self._refuse_positional(filters, kernel_size, positional)
        super().__init__(name, input_shape)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{self.name}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = self._per_axis(kernel_size, "kernel_size")
        self.stride = self._per_axis(stride, "stride")
        self.dilation = self._per_axis(dilation, "dilation")
        self.use_bias = check_bool(self, "use_bias", use_bias)
        self.kernel_init = check_initializer(self, "kernel_init", kernel_init)
        self.bias_init = check_initializer(self, "bias_init", bias_init)
        self.activation = resolve_activation(activation_from_config(activation), self.name)

    def _refuse_positional(self, filters, kernel_size, positional):
        """The TypeError for Keras 1's ``Conv2D(20, 5, 5)`` (a 5x5 kernel, not a stride of 5)."""
        cls, dims = type(self).__name__, self.spatial_dims
        args = ", ".join(map(repr, (filters, kernel_size, *positional)))
        kernel = (kernel_size, *positional)[:dims]
        axes = ("depth, " if dims == 3 else "") + "rows, cols"
        if len(kernel) == dims:
            hint = f"For a {'x'.join(map(str, kernel))} kernel write {cls}({filters!r}, {kernel!r})"
        else:
            hint = f"Give the kernel as one int or {dims} ints, e.g. {cls}({filters!r}, {(kernel_size,) * dims!r})"
        raise TypeError(
            f"{cls}({args}): the arguments after kernel_size are keyword-only. {hint} (Keras 1's "
            f"{cls}(filters, {axes})); for a stride write stride={positional[0]!r}"
        )

    def _per_axis(self, value, what, minimum=1):
        """An int or one int per spatial axis (>= minimum) -> a tuple; a ValueError naming the layer."""
        return positive_tuple(value, self.spatial_dims, f"{self.name}: {what}", minimum)

    def fixed_input(self, input_shape):
        return (input_shape[0],) + (None,) * self.spatial_dims  # the channels, not the image size

    def check_channels_first(self, input_shape):
        """Refuse a first input that looks channels-last, ``(N, H, W, C)``: read as NCHW it would
        train silently with H taken as the channel count (a 32x32x3 batch made W (K, 32, 3, 3)).
        Volumes likewise: ``(N, D, H, W, C)`` read as NCDHW.

        Checked when the layer is built from data or from a model's declared input shape, not
        when a model builds it on another layer's output. The rule is :func:`looks_channels_last`:
        last axis 1, 3 or 4, the others >= 8 and within a factor 4. If your input really is
        ``(N, C, H, W)`` with such sizes, build the layer yourself first
        (``layer.build((C, H, W))``): a built layer is not checked again.
        """
        if not self.built and len(input_shape) == self.spatial_dims + 1 and looks_channels_last(input_shape):
            *sizes, C = input_shape
            axes, what = ("H, W", "images") if self.spatial_dims == 2 else ("D, H, W", "volumes")
            order = (0, len(input_shape), *range(1, len(input_shape)))
            listed = ", ".join(map(str, sizes))
            raise ValueError(
                f"{self.name}: input of shape (N, {listed}, {C}) looks channels-last (N, {axes}, C); handprop "
                f"takes {what} as (N, C, {axes}), as PyTorch. Transpose it: x.transpose{order} gives "
                f"(N, {C}, {listed}) (and write input_shape=({C}, {listed})). If it really has {sizes[0]} channels "
                f"of {'x'.join(map(str, (*sizes[1:], C)))} {what}, build the layer first: "
                f"layer.build({tuple(input_shape)})"
            )

    def _ensure_built(self, x):
        if not self.built and getattr(x, "ndim", 0) == self.spatial_dims + 2:
            self.check_channels_first(tuple(x.shape[1:]))
        return super()._ensure_built(x)

    def get_config(self):
        return {"kernel_init": self.kernel_init, "bias_init": self.bias_init,
                "activation": activation_config(self.activation), **super().get_config()}

    def _weight_shape_and_fans(self, channels):
        raise NotImplementedError

    def _out_channels(self, channels):
        """Output channels for ``channels`` input channels (``filters`` unless a subclass says)."""
        return self.filters

    def create_params(self, rng):
        shape, fans = self._weight_shape_and_fans(self.input_shape[0])
        self.params["W"] = init.get(self.kernel_init)(shape, rng, dtype=self.dtype, fans=fans)
        if self.use_bias:
            self.params["b"] = init.get(self.bias_init)((self._out_channels(self.input_shape[0]),), rng,
                                                        dtype=self.dtype)

    def _too_small(self, input_shape, out, padding):
        raise ValueError(
            f"{self.name}: input (C, {', '.join('DHW'[-self.spatial_dims:])}) = {tuple(input_shape)} is too small "
            f"for kernel {self.kernel_size} with stride {self.stride}, padding {padding}, dilation {self.dilation}: "
            f"output would be {out}"
        )


class _Convolution(_Conv):
    """The forward convolution over ``spatial_dims`` axes -- padding rules, geometry, forward and
    backward -- written once. :class:`Conv2D`, :class:`Conv3D` and :class:`DepthwiseConv2D` differ
    only in their weight shape and the engine kernels they call (``kernels``)."""

    kernels = ("conv2d_forward", "conv2d_backward")
    """The names of the engine's forward/backward pair (:mod:`handprop.kernels`)."""

    def __init__(self, filters, kernel_size, *positional, stride=1, padding="valid", dilation=1, use_bias=True,
                 kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None, input_shape=None):
        super().__init__(filters, kernel_size, positional, stride=stride, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, activation=activation, name=name,
                         input_shape=input_shape)
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"{self.name}: padding must be 'valid', 'same', int or one int per axis, "
                             f"got {padding!r}")
        self.padding = padding if isinstance(padding, str) else self._per_axis(padding, "padding", 0)

    def _weight_shape_and_fans(self, channels):
        taps = int(np.prod(self.kernel_size))
        return (self.filters, channels, *self.kernel_size), (channels * taps, self.filters * taps)

    def geometry(self, *sizes):
        """``(ConvGeometry, extra)`` for an input of spatial ``sizes`` (H, W): the symmetric padding
        the kernels apply, and the extra bottom/right row/column of asymmetric "same" padding that
        the layer adds."""
        if self.padding == "same":
            pads = [same_padding(n, k, s, d) if n is not None else (0, 0)
                    for n, k, s, d in zip(sizes, self.kernel_size, self.stride, self.dilation)]
            return ConvGeometry(self.stride, tuple(p for p, _ in pads), self.dilation), tuple(e for _, e in pads)
        padding = (0,) * self.spatial_dims if self.padding == "valid" else self.padding
        return ConvGeometry(self.stride, padding, self.dilation), (0,) * self.spatial_dims

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape, self.spatial_dims)
        channels, *sizes = input_shape
        K = self._out_channels(channels)
        if self.padding == "same":  # ceil(size / stride), whatever the kernel
            return (K, *(None if n is None else -(-n // s) for n, s in zip(sizes, self.stride)))
        padding = self.geometry(*sizes)[0].padding
        out = tuple(output_size(*a) for a in zip(sizes, self.kernel_size, self.stride, padding, self.dilation))
        if any(o is not None and o < 1 for o in out):
            self._too_small(input_shape, (K, *out), padding)
        return (K, *out)

    def forward(self, x, training=True):
        """``y = conv(x, W) + b`` (module docstring); the engine returns y and its cache."""
        x = self._ensure_built(x)
        # The last call's cache goes first: its arrays (the numba engine's packed columns: MBs)
        # are then free for this call to reuse (measured: packing ~30% faster in the ConvNet).
        self._cache = None
        geometry, extra = self.geometry(*x.shape[2:])
        if any(extra):  # the odd row/column of asymmetric "same" padding
            x = get_array_module(x).pad(x, ((0, 0), (0, 0), *((0, e) for e in extra)))
        conv_forward = get_kernel(self.kernels[0], x)  # e.g. conv2d_forward of the engine in force
        y, cache = conv_forward(x, self.params["W"], self.params.get("b"), geometry, training)
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
        skipped when ``need_dx`` is False. The reference engine writes these sums as loops. A 3-D
        convolution has one more index in each; a depthwise one has no sum over ``c``. With an
        ``activation``, ``dy`` is first taken back through it.
        """
        cache, extra, y_shape, activation_cache = self._cached()
        check_dy(self, dy, y_shape)
        dy = self._activation_backward(dy, activation_cache)
        conv_backward = get_kernel(self.kernels[1], dy)  # e.g. conv2d_backward
        dx, self.grads["W"], db = conv_backward(dy, cache, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        if dx is not None and any(extra):
            dx = dx[(slice(None), slice(None), *(slice(0, n - e) for n, e in zip(dx.shape[2:], extra)))].copy()
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation, "use_bias": self.use_bias, **super().get_config()}


class Conv2D(_Convolution):
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

    ``forward`` and ``backward`` (with the index equations) are written once for 2-D and 3-D, in
    ``_Convolution`` just above.
    """

    spatial_dims = 2
    kernels = ("conv2d_forward", "conv2d_backward")


class Conv3D(_Convolution):
    """3-D convolution of volumes, NCDHW (PyTorch's ``Conv3d``): :class:`Conv2D` with a depth axis.

    ``Conv3D(filters, kernel_size, *, stride=1, padding="valid", dilation=1, use_bias=True,
    kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None, input_shape=None)``;
    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int or a triple (depth, height,
    width); ``padding="same"`` as Conv2D's, per axis; ``input_shape`` is (C, D, H, W) (``None`` for
    free sizes) and the rest as :class:`Conv2D`. For x (N, C, D, H, W), W (K, C, T, R, S)::

        y[n, k, l, i, j] = b[k] + sum_{c, t, r, s} W[k, c, t, r, s] * xpad[n, c, l sd + t dd, i sh + r dh, j sw + s dw]

        Do = floor((D + 2 pd - dd (T - 1) - 1) / sd) + 1       (Ho, Wo likewise)

    Params ``"W"`` (K, C, T, R, S), ``"b"`` (K,); Glorot fans ``C T R S`` and ``K T R S``. Any
    volume size at least as large as the kernel; building fixes the channels only.
    """

    spatial_dims = 3
    kernels = ("conv3d_forward", "conv3d_backward")


class DepthwiseConv2D(_Convolution):
    """Depthwise convolution: one ``R x S`` filter per input channel (``depth_multiplier`` of them),
    no mixing of channels -- PyTorch's ``Conv2d(C, C M, k, groups=C)``, Keras' ``DepthwiseConv2D``.

    ``DepthwiseConv2D(kernel_size, *, depth_multiplier=1, stride=1, padding="valid", dilation=1,
    use_bias=True, kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None,
    input_shape=None)``, the keywords as :class:`Conv2D`'s. For x (N, C, H, W) and W (C M, 1, R, S)
    (PyTorch's layout)::

        y[n, c M + m, i, j] = b[c M + m] + sum_{r, s} W[c M + m, 0, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

    Followed by a 1 x 1 :class:`Conv2D` it is a *depthwise-separable* convolution (MobileNet,
    Xception): ``C R S + C K`` weights instead of ``C K R S``. Output (N, C M, Ho, Wo) with the
    sizes of :class:`Conv2D`. Glorot fans ``fan_in = R S`` (the inputs one output reads) and
    ``fan_out = M R S`` (the outputs one input feeds); Keras uses ``C R S`` / ``M R S``, PyTorch
    ``R S`` / ``C M R S``.
    """

    spatial_dims = 2
    kernels = ("depthwise_conv2d_forward", "depthwise_conv2d_backward")

    def __init__(self, kernel_size, *, depth_multiplier=1, stride=1, padding="valid", dilation=1, use_bias=True,
                 kernel_init="glorot_uniform", bias_init="zeros", activation=None, name=None, input_shape=None):
        super().__init__(1, kernel_size, stride=stride, padding=padding, dilation=dilation, use_bias=use_bias,
                         kernel_init=kernel_init, bias_init=bias_init, activation=activation, name=name,
                         input_shape=input_shape)
        m = depth_multiplier
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m <= 0:
            raise ValueError(f"{self.name}: depth_multiplier must be a positive int, got {m!r}")
        self.depth_multiplier = int(m)
        self.filters = None  # the output channels, C M, follow from the input

    def _out_channels(self, channels):
        return None if channels is None else channels * self.depth_multiplier

    def _weight_shape_and_fans(self, channels):
        R, S = self.kernel_size
        M = self.depth_multiplier
        return (channels * M, 1, R, S), (R * S, M * R * S)

    def get_config(self):
        config = super().get_config()
        del config["filters"]  # not an argument: C M follows from the input
        return {"kernel_size": config.pop("kernel_size"), "depth_multiplier": self.depth_multiplier, **config}


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
        self.padding = self._per_axis(padding, "padding", 0)
        self.output_padding = self._per_axis(output_padding, "output_padding", 0)
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
