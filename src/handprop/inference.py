"""Whole-image inference: a patch classifier made fully convolutional, sliding windows, tiles.

A **patch classifier** labels the centre pixel of a ``P x P`` patch (Conv ... -> Flatten -> Dense).
Scoring every pixel of a retina that way means one forward pass per pixel: the
**sliding-window** classifier (:func:`sliding_window_predict`). Neighbouring patches overlap
almost entirely, so nearly all of that work is repeated.

A **fully convolutional** network computes it once (:func:`to_fully_convolutional`):

* a ``Dense`` layer reading a flattened ``(C, h, w)`` map *is* a convolution with an ``h x w``
  kernel: ``W_conv[k, c, i, j] = W_dense[(c h + i) w + j, k]`` (Flatten's C order); the Dense
  layers after it are 1 x 1 convolutions;
* a stride (pooling or convolution) would make the network score only every ``s``-th pixel. To
  score them all, the stride is set to 1 and every later window is dilated by ``s`` instead,
  so it still reads the pixels it read in the patch (the "à trous" trick; Giusti et al. 2013,
  *Fast image scanning with deep max-pooling convolutional neural networks*).

The result gives, at every pixel, exactly the patch classifier's output for the patch centred
there, in one pass (tested equal on every pixel). :func:`predict_tiled` runs a model on a large
image tile by tile with overlapping tiles blended by constant or Gaussian weights (as MONAI's
sliding-window inference), so memory stays bounded and tile borders leave no seams.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import layers as L
from .backend import to_numpy
from .checks import check_int, check_int_pair, check_real
from .model import Sequential

_ELEMENTWISE = (L.ReLU, L.LeakyReLU, L.ELU, L.Sigmoid, L.Tanh, L.Linear, L.Dropout)


def _copy_weights(src, dst, **arrays):
    """Give ``dst`` (a new, unbuilt layer) these arrays as params and ``src``'s trainable flag
    (the model's build casts them to its dtype)."""
    for k, v in arrays.items():
        dst.params[k] = np.ascontiguousarray(v)
    dst.trainable = src.trainable


def _activation_for_fcn(layer):
    """A fresh copy of ``layer``'s ``activation=`` argument for its convolutional replacement
    (None without one). A Dense layer's softmax (over its units) becomes a softmax over the channel
    axis, where the units now lie; a convolution's softmax converts only if it already is over
    the channels."""
    act = layer.activation
    if act is None:
        return None
    if isinstance(act, L.Softmax):
        if isinstance(layer, L.Conv2D) and act.axis != 1:
            raise ValueError(f"to_fully_convolutional: {layer.name} applies a softmax over axis {act.axis}, which "
                             "covers other positions once the input is a whole image; only axis=1 converts exactly")
        return L.Softmax(axis=1)
    return type(act)(**act.get_config())


def to_fully_convolutional(model, name=None):
    """A fully convolutional copy of a trained patch classifier that scores every pixel.

    ``model``: a built ``Sequential`` of ``Conv2D`` (``padding="valid"``), pooling, activations,
    BatchNorm, Dropout, then ``Flatten`` and ``Dense`` layers (the tutorial's patch CNN).
    Returns a ``Sequential`` taking images of any size ``(N, C, H, W)`` whose output ``(i, j)``
    equals ``model`` on the patch ``x[:, :, i : i + P, j : j + P]`` (``P`` the patch size), for
    every ``i <= H - P`` and ``j <= W - P`` (a pooling layer that leaves a patch's last row unused
    gives one more output row). :func:`predict_dense` pads the image by ``P // 2`` for one output
    per input pixel. The weights are copies.
    """
    if not isinstance(model, Sequential) or not model.built:
        raise TypeError("to_fully_convolutional: expects a built Sequential patch classifier")
    shape = model.input_shape  # (C, P, P)
    if any(d is None for d in shape):
        raise ValueError("to_fully_convolutional: the patch classifier must have a fixed input size (C, P, P)")
    dil = (1, 1)  # how far apart, in input pixels, neighbouring positions of the current map are
    out = []
    flat_shape = None
    for layer in model.layers:
        in_shape = shape
        shape = layer.compute_output_shape(shape)
        if isinstance(layer, L.Conv2D):
            if layer.padding not in ("valid", (0, 0)):
                raise ValueError(f"to_fully_convolutional: {layer.name} pads its input (padding={layer.padding!r}); "
                                 "zeros at the patch border differ from the image around it, so only "
                                 "padding='valid' converts exactly")
            new = L.Conv2D(layer.filters, layer.kernel_size, dilation=_times(layer.dilation, dil),
                           use_bias=layer.use_bias, activation=_activation_for_fcn(layer), name=layer.name)
            _copy_weights(layer, new, **layer.params)
            dil = _times(dil, layer.stride)
        elif isinstance(layer, (L.MaxPool2D, L.AvgPool2D)):
            if layer.padding != (0, 0):
                raise ValueError(f"to_fully_convolutional: {layer.name} pads its input; only padding=0 converts "
                                 "exactly")
            new = type(layer)(layer.pool_size, stride=1, dilation=_times(layer.dilation, dil), name=layer.name)
            dil = _times(dil, layer.stride)
        elif isinstance(layer, L.Flatten):
            flat_shape = in_shape  # (C, h, w): the next Dense becomes an h x w convolution
            continue
        elif isinstance(layer, L.Dense):
            W = layer.params["W"]  # (features, units)
            if flat_shape is not None:  # the first Dense after Flatten
                C, h, w = flat_shape
                new = L.Conv2D(layer.units, (h, w), dilation=dil, use_bias=layer.use_bias,
                               activation=_activation_for_fcn(layer), name=layer.name)
                kernel = W.T.reshape(layer.units, C, h, w)
                flat_shape = None
            else:
                new = L.Conv2D(layer.units, 1, use_bias=layer.use_bias, activation=_activation_for_fcn(layer),
                               name=layer.name)
                kernel = W.T.reshape(layer.units, W.shape[0], 1, 1)
            _copy_weights(layer, new, W=kernel, **({"b": layer.params["b"]} if layer.use_bias else {}))
        elif isinstance(layer, (L.Softmax, L.LogSoftmax)):
            new = type(layer)(axis=1, name=layer.name)  # class scores now lie along the channel axis
        elif flat_shape is not None and isinstance(layer, (L.PReLU, L.BatchNorm)) and layer.params:
            raise ValueError(f"to_fully_convolutional: {layer.name} between Flatten and Dense has one weight per "
                             "flattened number, which no convolution reproduces")
        elif isinstance(layer, (L.PReLU, L.BatchNorm)):
            new = type(layer)(**layer.get_config())
            _copy_weights(layer, new, **layer.params)
            new.state.update({k: v.copy() for k, v in layer.state.items()})
        elif isinstance(layer, _ELEMENTWISE):
            new = type(layer)(**layer.get_config())
        else:
            raise TypeError(f"to_fully_convolutional: cannot convert {layer.name} ({type(layer).__name__})")
        out.append(new)
    fcn = Sequential(seed=model.seed, name=name or f"{model.name}_fcn")
    fcn.layers = out
    fcn.dtype = model.dtype
    _build_keeping(fcn, (model.input_shape[0], None, None))
    return fcn


def _times(a, b):
    return (a[0] * b[0], a[1] * b[1])


def _build_keeping(model, input_shape):
    """Build a Sequential whose layers already hold their weights: create the (random) weights,
    then put the copied ones back (with the model's dtype)."""
    saved = [({k: v for k, v in layer.params.items()}, dict(layer.state)) for layer in model.layers]
    for layer in model.layers:
        layer.params = {}
    model.build(input_shape, dtype=model.dtype)
    for layer, (params, state) in zip(model.layers, saved):
        for k, v in params.items():
            if layer.params[k].shape != v.shape:
                raise AssertionError(f"{layer.name}/{k}: {layer.params[k].shape} != {v.shape}")
            layer.params[k] = v.astype(model.dtype)
        for k, v in state.items():
            layer.state[k] = v.astype(model.dtype)
        layer.zero_grads()


def _patch_size(model):
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError("the patch classifier must be built for square patches (C, P, P)")
    return shape[1]


def _pad_image(image, r, mode):
    """(N, C, H, W) padded by ``r`` pixels on each side: "reflect", "edge" or "constant" (zeros)."""
    return np.pad(image, ((0, 0), (0, 0), (r, r), (r, r)), mode=mode)


def predict_dense(fcn, images, patch_size, pad_mode="reflect", batch_size=1):
    """One output per input pixel: pad ``images`` (N, C, H, W) by ``patch_size // 2`` and run the
    fully convolutional ``fcn`` (from :func:`to_fully_convolutional`). -> (N, outputs, H, W)."""
    if patch_size % 2 != 1:
        raise ValueError(f"predict_dense: patch_size must be odd (a centre pixel), got {patch_size}")
    images = to_numpy(images)  # CuPy images too: cut and padded on the host, predict moves the batches
    r = patch_size // 2
    out = fcn.predict(_pad_image(images, r, pad_mode), batch_size=batch_size)
    return out[:, :, : images.shape[2], : images.shape[3]]


def sliding_window_predict(model, images, batch_size=1024, pad_mode="reflect", mask=None, verbose=0):
    """The patch classifier run on the patch centred at every pixel: (N, C, H, W) -> (N, outputs, H, W).

    One forward pass per pixel, ``batch_size`` patches at a time; the images are padded by
    ``P // 2`` (``pad_mode``) so border pixels get a patch too. With ``mask`` (N, H, W) only the
    pixels where it is true are scored (the others are 0). The slow, obviously-correct baseline
    for :func:`to_fully_convolutional`.
    """
    batch_size = check_int(batch_size, "sliding_window_predict: batch_size", 1)
    images = to_numpy(images)  # CuPy images too: cut and padded on the host, predict moves the batches
    P = _patch_size(model)
    r = P // 2
    padded = _pad_image(images, r, pad_mode)
    N, _, H, W = images.shape
    where = np.argwhere(np.ones((N, H, W), bool) if mask is None else np.asarray(mask, bool))
    out = None
    for start in tqdm(range(0, len(where), batch_size), disable=not verbose, desc="sliding window"):
        idx = where[start:start + batch_size]
        patches = np.stack([padded[n, :, i:i + P, j:j + P] for n, i, j in idx])
        scores = model.predict(patches, batch_size=batch_size).reshape(len(idx), -1)
        if out is None:
            out = np.zeros((N, scores.shape[1], H, W), dtype=scores.dtype)
        out[idx[:, 0], :, idx[:, 1], idx[:, 2]] = scores
    return out


def predict_padded(model, images, multiple=1, batch_size=1, pad_mode="reflect", max_pixels=None):
    """Run a fully convolutional model on whole images whose size it cannot take as is.

    A U-Net of depth ``d`` halves the image ``d`` times and doubles it back, so its input size
    must be a multiple of ``2**d`` (a 584 x 565 retina is not). The images (N, C, H, W) are
    padded at the bottom/right up to the next ``multiple`` (``pad_mode`` "reflect", "edge" or
    "constant"), run in one pass each, and the output is cropped back to H x W.

    ``max_pixels``: the largest input one pass may take (memory grows with it: about 1.5 KB per
    pixel for the demo's U-Net). A larger padded image is run in overlapping tiles
    (:func:`predict_overlapping`) that give the same numbers as the whole image, to float32
    rounding; None runs every image whole.
    """
    multiple = check_int(multiple, "predict_padded: multiple", 1)
    batch_size = check_int(batch_size, "predict_padded: batch_size", 1)
    images = to_numpy(images)  # CuPy images too: cut and padded on the host, predict moves the batches
    H, W = images.shape[2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        images = np.pad(images, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=pad_mode)
    if max_pixels is not None and images.shape[2] * images.shape[3] > check_int(max_pixels, "max_pixels", 1):
        return predict_overlapping(model, images, multiple, max_pixels)[:, :, :H, :W]
    return to_numpy(model.predict(images, batch_size=batch_size))[:, :, :H, :W]


def predict_overlapping(model, images, multiple, max_pixels):
    """Whole-image outputs of a fully convolutional ``model`` computed tile by tile, each pass at
    most ``max_pixels`` pixels: the overlap-tile strategy of the U-Net paper.

    Each tile keeps only its core; around it the tile reads ``margin`` more pixels on every side
    (the model's receptive field, rounded up to ``multiple``), so every kept pixel sees exactly the
    input it sees in the whole image, and tiles start on multiples of ``multiple`` so the poolings'
    grids line up with the whole image's. ``images`` (N, C, H, W) with H, W multiples of
    ``multiple``. -> (N, K, H, W), equal to ``model.predict(images)`` to float32 rounding.
    """
    from .receptive_field import receptive_field

    margin = -(-max(receptive_field(model)) // multiple) * multiple
    side = int(np.sqrt(max_pixels)) // multiple * multiple
    core = side - 2 * margin
    if core < multiple:
        raise ValueError(f"predict_overlapping: max_pixels={max_pixels} leaves no room inside the {margin}-pixel "
                         f"margins the model's receptive field needs; allow at least {(2 * margin + multiple)**2}")
    N, _, H, W = images.shape
    out = None
    for i in range(0, H, core):
        for j in range(0, W, core):
            top, left = max(0, i - margin), max(0, j - margin)
            tile = images[:, :, top:min(H, i + core + margin), left:min(W, j + core + margin)]
            pred = to_numpy(model.predict(np.ascontiguousarray(tile), batch_size=1))
            if out is None:
                out = np.empty((N, pred.shape[1], H, W), pred.dtype)
            out[:, :, i:i + core, j:j + core] = pred[:, :, i - top:i - top + core, j - left:j - left + core]
    return out


# ----------------------------------------------------------------------------- tiles
def blending_window(tile, mode="gaussian", sigma_scale=0.125, dtype=np.float32):
    """Weights (th, tw) for blending overlapping tiles: all ones ("constant") or a Gaussian
    centred on the tile with standard deviation ``sigma_scale`` times the tile size per axis
    (MONAI's default 0.125), normalized to a maximum of 1 and kept above 1e-3 so no pixel gets
    zero weight."""
    tile = check_int_pair(tile, "blending_window: tile")
    check_real(sigma_scale, "blending_window: sigma_scale", 0.0, low_open=True)
    if mode == "constant":
        return np.ones(tile, dtype)
    if mode != "gaussian":
        raise ValueError(f"blending_window: mode must be 'constant' or 'gaussian', got {mode!r}")
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (sigma_scale * n)) ** 2) for n in tile]
    w = np.outer(*axes)
    return np.maximum(w / w.max(), 1e-3).astype(dtype)


def _starts(size, tile, step):
    """Tile origins covering ``[0, size)``: every ``step`` pixels, the last one flush with the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def predict_tiled(model, images, tile=(256, 256), overlap=0.25, blend="gaussian", batch_size=4, verbose=0):
    """Run ``model`` on large images tile by tile and blend the tiles into one output map.

    ``images`` (N, C, H, W); ``model`` maps (n, C, th, tw) tiles to (n, K, th, tw) (a U-Net with
    "same" padding). Tiles of size ``tile`` overlap by the fraction ``overlap`` (0 <= overlap < 1)
    and each output pixel is the weighted mean of the tiles that cover it, with
    :func:`blending_window` weights (``"gaussian"``: a tile's uncertain borders count little;
    ``"constant"``: a plain mean). Images smaller than a tile are padded (reflect) and cropped
    back. -> (N, K, H, W) NumPy array.
    """
    images = to_numpy(images)  # CuPy images too: cut and padded on the host, predict moves the batches
    check_real(overlap, "predict_tiled: overlap", 0.0, 1.0, high_open=True)
    th, tw = check_int_pair(tile, "predict_tiled: tile")
    batch_size = check_int(batch_size, "predict_tiled: batch_size", 1)
    N, C, H, W = images.shape
    pad_h, pad_w = max(0, th - H), max(0, tw - W)
    if pad_h or pad_w:
        images = np.pad(images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    Hp, Wp = images.shape[2:]
    step_h, step_w = max(1, int(round(th * (1 - overlap)))), max(1, int(round(tw * (1 - overlap))))
    origins = [(i, j) for i in _starts(Hp, th, step_h) for j in _starts(Wp, tw, step_w)]
    weight = blending_window((th, tw), blend)
    out = norm = None
    for n in range(N):
        for start in tqdm(range(0, len(origins), batch_size), disable=not verbose, desc=f"tiles of image {n}"):
            batch = origins[start:start + batch_size]
            tiles = np.stack([images[n, :, i:i + th, j:j + tw] for i, j in batch])
            pred = to_numpy(model.predict(tiles, batch_size=batch_size))
            if pred.shape[2:] != (th, tw):
                raise ValueError(f"predict_tiled: the model maps {th}x{tw} tiles to {pred.shape[2:]}; it must keep "
                                 "the size (a fully convolutional network with 'same' padding)")
            if out is None:
                out = np.zeros((N, pred.shape[1], Hp, Wp), pred.dtype)
                norm = np.zeros((Hp, Wp), pred.dtype)
            for (i, j), p in zip(batch, pred):
                out[n, :, i:i + th, j:j + tw] += p * weight
                if n == 0:
                    norm[i:i + th, j:j + tw] += weight
    return (out / norm)[:, :, :H, :W]
