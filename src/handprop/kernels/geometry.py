"""Where a window reads: output sizes, padding rules and the geometry tuples kernels receive.

Everything here is shared by the layers (to compute shapes and validate hyper-parameters) and by
every engine (to size their outputs), so it lives apart from any one engine. Shapes are NCHW for
images and NCDHW for volumes: every rule below holds per spatial axis, so a geometry's entries are
pairs ``(h, w)`` for images and triples ``(d, h, w)`` for volumes.

A convolution or pooling window of ``k`` taps with stride ``s``, symmetric zero padding ``p`` and
dilation ``d`` gives, along one spatial axis of size ``n``::

    k_eff = d (k - 1) + 1                      the window's extent, holes included
    out   = floor((n + 2 p - k_eff) / s) + 1   = floor((n + 2 p - d (k - 1) - 1) / s) + 1

A size may be ``None`` (a model built for any image size): the output size is then ``None`` too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ConvGeometry(NamedTuple):
    """How a convolution's window moves: ``(sh, sw)`` stride, ``(ph, pw)`` symmetric zero padding,
    ``(dh, dw)`` dilation. Unpacks as a tuple: ``(sh, sw), (ph, pw), (dh, dw) = geometry``.
    For volumes each entry is a triple (depth, height, width)."""

    stride: tuple
    padding: tuple
    dilation: tuple = (1, 1)


class PoolGeometry(NamedTuple):
    """A pooling window: ``(R, S)`` size, ``(sh, sw)`` stride, ``(ph, pw)`` padding (at most half the
    window), ``(dh, dw)`` dilation (spacing between taps, as a convolution's). Unpacks as
    ``(R, S), (sh, sw), (ph, pw), (dh, dw) = geometry``; triples for volumes."""

    pool: tuple
    stride: tuple
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)


def output_size(size, kernel, stride, padding, dilation=1):
    """``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1`` (may be <= 0);
    ``None`` for a free size."""
    if size is None:
        return None
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size, kernel, stride, dilation=1):
    """``(before, extra)`` zero padding that gives ``ceil(size / stride)`` outputs ("same").

    The total ``(out - 1) s + d (k - 1) + 1 - size`` is split as Keras and PyTorch do: half on each
    side, the odd pixel at the end (bottom / right). Kernels take symmetric padding ``before``; the
    layer adds the ``extra`` row or column itself (only for an even extent or a stride).
    """
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total % 2


def first_tap(start, dilation):
    """The first tap ``start + r d`` (r >= 0) of a window that lies inside the image (>= 0):
    ``start`` itself when it is >= 0, else ``start`` moved up by ``ceil(-start / d)`` taps.
    ``start`` may be an int or an integer array (NumPy or CuPy)."""
    return start + (-start + dilation - 1) // dilation * dilation * (start < 0)


def check_pool_padding(pool, padding):
    """PyTorch's rule: padding at most half the window (on every axis), so every window sees a
    real pixel."""
    if any(p > k // 2 for k, p in zip(pool, padding, strict=True)):
        raise ValueError(f"pooling padding {tuple(padding)} must be at most half the pool size {tuple(pool)}")


def check_pool_geometry(sizes, geometry):
    """The padding rule of :func:`check_pool_padding`, and: no window reads padding only.

    A window that starts inside the input always holds a real pixel. One that starts in the
    padding, at ``a < 0``, reads pixels ``a mod d, a mod d + d, ...`` (dilation ``d``): none when
    ``a mod d >= size``, i.e. when a dilated window steps over a small input altogether. PyTorch
    returns ``-inf`` there (and an index outside the input); handprop refuses. ``sizes`` are the
    spatial sizes (``None`` entries are skipped)."""
    pool, stride, padding, dilation = geometry
    if not len(sizes) == len(pool) == len(stride) == len(padding) == len(dilation):
        raise ValueError(f"pooling geometry {tuple(geometry)} does not match the {len(sizes)} spatial axes of the "
                         "input: one entry per axis in each (a volume's PoolGeometry needs dilation=(1, 1, 1) too)")
    check_pool_padding(pool, padding)
    for n, s, p, d in zip(sizes, stride, padding, dilation):
        for start in range(-p, 0, s) if n is not None else ():
            if start % d >= n:
                raise ValueError(
                    f"a pooling window starting at {start} (padding {p}, dilation {d}) reads only padding on an axis "
                    f"of size {n}: use less padding or dilation, or a larger input"
                )


def pair(v, what="value"):
    """``3 -> (3, 3)``, ``(3, 5) -> (3, 5)``; rejects anything else with a readable error."""
    return ntuple(v, 2, what)


def ntuple(v, n, what="value"):
    """``3 -> (3,) * n``, a sequence of ``n`` ints -> a tuple; anything else is a ValueError."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    if (isinstance(v, (tuple, list)) and len(v) == n
            and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in v)):
        return tuple(int(i) for i in v)
    raise ValueError(f"{what} must be an int or {n} ints, got {v!r}")


def positive_tuple(v, n, what, minimum=1):
    """:func:`ntuple` that also checks every entry is ``>= minimum``; ``what`` names the argument
    (and its layer) in the error."""
    t = ntuple(v, n, what)
    if min(t) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {v!r}")
    return t


def positive_pair(v, what, minimum=1):
    """:func:`positive_tuple` for the two spatial axes of an image."""
    return positive_tuple(v, 2, what, minimum)
