"""Patches and tiles for training pixel classifiers, and samplers that draw fresh ones every epoch.

Two ways to learn from whole fundus images:

* **Patch classification** (the tutorial's first network): a patch of ``size × size`` pixels
  centred on a pixel is the input, the centre pixel's label (vessel or not) the target.
  ``extract_patches`` draws centres inside the field of view (FOV), optionally balancing vessel
  and background centres, and can cut several patches of different sizes (or zooms) around the
  same centre for a network with several inputs.
* **Segmentation** (fully convolutional nets, U-Net): an image tile is the input, its vessel
  mask the target and its FOV mask the per-pixel weight (pixels outside the FOV do not count).
  ``extract_tiles`` cuts them.

Samplers (``PatchSampler``, ``TileSampler``) draw new patches or tiles every epoch, optionally
augmented (``handprop.data.augment``) and standardized (``handprop.data.Standardizer``). Their
protocol, which ``model.fit`` understands::

    len(sampler)          # batches per epoch
    sampler.epoch(i)      # an iterator over epoch i's batches; the same (seed, i) gives the same batches
    iter(sampler)         # the next epoch's batches (epoch 0, then 1, ...: a counter in the sampler)
    # a batch is a tuple (x, y) (PatchSampler) or (x, y, sample_weight) (TileSampler)

Patch centres near the image border need pixels beyond it: images are padded (``pad_mode``,
NumPy's ``np.pad`` modes; ``"reflect"`` by default) so that every FOV pixel can be a centre. For a
patch of even size ``s`` the centre pixel is at index ``s // 2`` (one more pixel above and left).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..checks import check_int, check_real

__all__ = ["extract_patches", "extract_tiles", "sample_centres", "PatchSampler", "TileSampler"]


def _check_arrays(name, images, vessels, fov):
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{name}: images must be (n, C, H, W), got shape {images.shape}")
    n, _, h, w = images.shape
    fov = np.ones((n, h, w), bool) if fov is None else np.asarray(fov).astype(bool, copy=False)
    if fov.shape != (n, h, w):
        raise ValueError(f"{name}: fov must be (n, H, W) = {(n, h, w)} for images {images.shape}, got {fov.shape}")
    if vessels is not None:
        vessels = np.asarray(vessels)
        if vessels.shape != (n, h, w):
            raise ValueError(f"{name}: vessels must be (n, H, W) = {(n, h, w)} for images {images.shape}, "
                             f"got {vessels.shape}")
    return images, vessels, fov


def _choose(rng, pool, k):
    """``k`` entries of ``pool``: without replacement when there are enough, with replacement otherwise."""
    if k == 0:
        return pool[:0]
    if len(pool) == 0:
        raise ValueError("no pixel to draw from")
    return rng.choice(pool, size=k, replace=len(pool) < k)


def sample_centres(vessels, fov, per_image, balance=None, rng=None):
    """Patch centres inside the FOV: an (N, 3) int64 array of (image, row, column), N = n × per_image.

    ``balance=None``: uniform over each image's FOV pixels (vessel centres then come at the
    image's vessel fraction, about 12 %). ``balance=f``: ``round(f × per_image)`` centres on
    vessel pixels and the rest on background pixels, all inside the FOV. Centres are drawn without
    replacement when an image has enough pixels of the kind, with replacement otherwise.
    """
    rng = np.random.default_rng(rng)
    fov = np.asarray(fov, bool)
    n, h, w = fov.shape
    if balance is not None:
        if vessels is None:
            raise ValueError("sample_centres: balance needs the vessel masks (vessels is None)")
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"sample_centres: balance is the fraction of vessel centres, in [0, 1]; got {balance}")
    out = []
    for i in range(n):
        inside = fov[i].reshape(-1)
        if not inside.any():
            raise ValueError(f"sample_centres: image {i} has an empty FOV mask")
        if balance is None:
            chosen = _choose(rng, np.flatnonzero(inside), per_image)
        else:
            is_vessel = np.asarray(vessels[i]).reshape(-1) > 0
            k = int(round(balance * per_image))
            try:
                chosen = np.concatenate([_choose(rng, np.flatnonzero(inside & is_vessel), k),
                                         _choose(rng, np.flatnonzero(inside & ~is_vessel), per_image - k)])
            except ValueError:
                kind = "vessel" if k and not (inside & is_vessel).any() else "background"
                raise ValueError(f"sample_centres: image {i} has no {kind} pixel inside its FOV to centre "
                                 f"balance={balance} patches on") from None
        out.append(np.stack([np.full(len(chosen), i), chosen // w, chosen % w], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 3), np.int64)


def _views(size, scales):
    """[(window, factor)]: one per output array; a window of ``window`` px average-pooled by ``factor``."""
    what = "extract_patches: size (a positive int or a list of them)"
    if np.isscalar(size) or size is None:
        sizes = [check_int(size, what, 1)]
    elif isinstance(size, (list, tuple)) and size:
        sizes = [check_int(s, what, 1) for s in size]
    else:
        raise TypeError(f"{what}: got {size!r}")
    if scales is None:
        return [(s, 1) for s in sizes], not np.isscalar(size)
    if len(sizes) != 1:
        raise ValueError("extract_patches: give several sizes or several scales, not both")
    factors = [int(f) for f in scales]
    if not factors or min(factors) < 1:
        raise ValueError(f"extract_patches: scales must be positive integers, got {scales}")
    return [(sizes[0] * f, f) for f in factors], True


def _cut(images, centres, window, pad_mode):
    """(N, C, window, window) windows of ``images`` whose pixel ``window // 2`` is each centre."""
    n, c, h, w = images.shape
    half = window // 2
    out = np.empty((len(centres), c, window, window), images.dtype)
    for i in np.unique(centres[:, 0]):
        rows = np.flatnonzero(centres[:, 0] == i)
        padded = np.pad(images[i], ((0, 0), (half, window - half - 1), (half, window - half - 1)), mode=pad_mode)
        view = sliding_window_view(padded, (window, window), axis=(1, 2))  # (C, H, W, window, window)
        out[rows] = view[:, centres[rows, 1], centres[rows, 2]].transpose(1, 0, 2, 3)
    return out


def extract_patches(images, vessels, fov, size, per_image, *, balance=None, seed=0, scales=None,
                    pad_mode="reflect", centres=None, return_centres=False):
    """Patches centred on FOV pixels, and the label of each centre pixel.

    Parameters
    ----------
    images : (n, C, H, W) array
    vessels : (n, H, W) array of {0, 1}, or None (then ``labels`` is None)
    fov : (n, H, W) bool array, or None (the whole image)
    size : int, or a list of ints
        Patch side in pixels. Several sizes give several arrays around the same centres (for a
        multi-input network): ``size=[11, 25]`` -> ``[(N, C, 11, 11), (N, C, 25, 25)]``.
    per_image : int
        Patches drawn from each image.
    balance : float in [0, 1], optional
        Fraction of patches centred on vessel pixels (0.5: as many vessel as background patches).
        ``None``: centres uniform over the FOV.
    seed : int or np.random.Generator
    scales : list of ints, optional
        Zoomed-out views of one ``size``: for each factor ``f`` a window of ``size × f`` pixels,
        average-pooled by ``f`` to ``size × size`` (``scales=[1, 3]``: the patch and a 3× wider,
        3× coarser context). Use odd sizes and odd factors to keep the centre pixel centred.
    pad_mode : str
        How images are padded for centres near the border (``np.pad`` mode).
    centres : (N, 3) int array, optional
        Given (image, row, column) centres instead of drawing them (``per_image``, ``balance`` and
        ``seed`` are then unused).
    return_centres : bool
        Also return the (N, 3) centres.

    Returns
    -------
    patches : (N, C, s, s) array of the images' dtype (a list of them for several sizes / scales),
        N = n × per_image, in image order.
    labels : (N,) int64 in {0, 1}: the vessel mask at each centre (None without ``vessels``).
    centres : (N, 3) int64, only with ``return_centres=True``.
    """
    images, vessels, fov = _check_arrays("extract_patches", images, vessels, fov)
    views, as_list = _views(size, scales)
    if centres is None:
        centres = sample_centres(vessels, fov, int(per_image), balance, np.random.default_rng(seed))
    else:
        centres = np.asarray(centres, np.int64).reshape(-1, 3)
    patches = []
    for window, factor in views:
        cut = _cut(images, centres, window, pad_mode)
        if factor > 1:
            s = window // factor
            cut = cut.reshape(len(cut), cut.shape[1], s, factor, s, factor).mean(axis=(3, 5), dtype=np.float64)
            cut = cut.astype(images.dtype)
        patches.append(cut)
    patches = patches if as_list else patches[0]
    labels = None if vessels is None else (vessels[centres[:, 0], centres[:, 1], centres[:, 2]] > 0).astype(np.int64)
    return (patches, labels, centres) if return_centres else (patches, labels)


def _tile_corners(rng, fov, size, per_image, stride):
    """(N, 3) (image, top, left) of tiles that lie inside the image."""
    n, h, w = fov.shape
    if size > h or size > w:
        raise ValueError(f"extract_tiles: tile size {size} is larger than the images ({h}x{w})")
    if stride is not None:
        tops = list(range(0, h - size + 1, stride))
        lefts = list(range(0, w - size + 1, stride))
        tops += [h - size] if tops[-1] != h - size else []
        lefts += [w - size] if lefts[-1] != w - size else []
        grid = np.array([(t, left) for t in tops for left in lefts], np.int64)
        return np.concatenate([np.column_stack([np.full(len(grid), i), grid]) for i in range(n)])
    # random tiles whose centre lies inside the FOV (so that every tile has FOV pixels)
    centres = sample_centres(None, fov, per_image, None, rng)
    tops = np.clip(centres[:, 1] - size // 2, 0, h - size)
    lefts = np.clip(centres[:, 2] - size // 2, 0, w - size)
    return np.column_stack([centres[:, 0], tops, lefts])


def extract_tiles(images, vessels, fov, size, per_image=None, *, stride=None, seed=0, return_corners=False):
    """Image tiles with their vessel and FOV masks, for training fully convolutional networks.

    Give ``per_image`` (random tiles, each centred on a random FOV pixel and moved inside the
    image) or ``stride`` (every tile of a regular grid, the last row and column flush with the
    border, so that the tiles cover the image).

    Returns
    -------
    x : (N, C, size, size) image tiles (the images' dtype)
    y : (N, 1, size, size) float32 vessel masks in {0, 1} (None without ``vessels``)
    weight : (N, 1, size, size) float32 FOV masks in {0, 1}: the per-pixel weight of a masked loss
    corners : (N, 3) int64 (image, top, left), only with ``return_corners=True``
    """
    images, vessels, fov = _check_arrays("extract_tiles", images, vessels, fov)
    size = int(size)
    if (per_image is None) == (stride is None):
        raise ValueError("extract_tiles: give either per_image (random tiles) or stride (a regular grid)")
    corners = _tile_corners(np.random.default_rng(seed), fov, size, per_image, stride)
    x = np.empty((len(corners), images.shape[1], size, size), images.dtype)
    y = None if vessels is None else np.empty((len(corners), 1, size, size), np.float32)
    weight = np.empty((len(corners), 1, size, size), np.float32)
    for k, (i, top, left) in enumerate(corners):
        window = (slice(top, top + size), slice(left, left + size))
        x[k] = images[i][(slice(None), *window)]
        weight[k, 0] = fov[i][window]
        if y is not None:
            y[k, 0] = vessels[i][window] > 0
    return (x, y, weight, corners) if return_corners else (x, y, weight)


# -- samplers ---------------------------------------------------------------------------------

class _Sampler:
    """The batch-source protocol: ``len``, ``epoch(i)``, ``__iter__`` (see the module docstring).

    An epoch draws its centres first, then builds each batch when it is asked for (so that one
    epoch's patches are never all in memory at once), from one generator ``default_rng([seed, i])``.
    """

    def __init__(self, images, vessels, fov, batch_size, per_epoch, seed, augment, standardizer,
                 zero_outside_fov, name):
        images, vessels, fov = _check_arrays(name, images, vessels, fov)
        if vessels is None:
            raise ValueError(f"{name}: needs the vessel masks (vessels is None)")
        check_int(batch_size, f"{name}: batch_size", 1)
        check_int(per_epoch, f"{name}: the number of tiles / patches per epoch", 1)
        self.images, self.vessels, self.fov = images, vessels, fov
        check_int(seed, f"{name}: seed", 0)
        self.batch_size, self.per_epoch, self.seed = int(batch_size), int(per_epoch), int(seed)
        self.augment, self.standardizer, self.zero_outside_fov = augment, standardizer, zero_outside_fov
        self._next_epoch = 0

    def __len__(self):
        return math.ceil(self.per_epoch / self.batch_size)

    def __iter__(self):
        epoch = self._next_epoch
        self._next_epoch += 1
        return self.epoch(epoch)

    def epoch(self, i):
        """An iterator over the batches of epoch ``i`` (the same ``(seed, i)`` gives the same batches)."""
        rng = np.random.default_rng([self.seed, int(i)])
        centres = self._centres(rng)
        for start in range(0, len(centres), self.batch_size):
            yield self._batch(centres[start:start + self.batch_size], rng)

    def _centres(self, rng, balance=None):
        """``per_epoch`` centres inside the FOV, about as many per image, shuffled across images."""
        per_image = -(-self.per_epoch // len(self.images))  # ceil; then keep per_epoch of them
        centres = sample_centres(self.vessels, self.fov, per_image, balance, rng)
        return centres[rng.permutation(len(centres))[:self.per_epoch]]

    def _window(self, i, top, left, window):
        """Image and masks in a square window that may stick out of the image (mirrored there, as "reflect")."""
        h, w = self.fov.shape[1:]
        rows, cols = np.arange(top, top + window), np.arange(left, left + window)
        rows = np.clip(np.abs(rows) - 2 * np.maximum(np.abs(rows) - (h - 1), 0), 0, h - 1)
        cols = np.clip(np.abs(cols) - 2 * np.maximum(np.abs(cols) - (w - 1), 0), 0, w - 1)
        return (self.images[i][:, rows[:, None], cols], self.vessels[i][rows[:, None], cols],
                self.fov[i][rows[:, None], cols])

    def _augmented(self, rng, i, cy, cx, out, margin):
        """An ``out``-pixel window centred on (cy, cx), augmented in a larger window, cut back to ``out``."""
        window = out + 2 * margin
        image, vessels, fov = self._window(i, cy - out // 2 - margin, cx - out // 2 - margin, window)
        image, vessels, fov = self.augment(image, vessels, fov, rng)
        crop = (slice(margin, margin + out), slice(margin, margin + out))
        return image[(slice(None), *crop)], vessels[crop], fov[crop]

    def _standardize(self, x, fov):
        """The standardizer's transform, zeroing outside the FOV when asked; float32."""
        if self.standardizer is not None:
            return self.standardizer.transform(x, fov if self.zero_outside_fov else None)
        if self.zero_outside_fov:
            x = x * np.expand_dims(fov, -3)
        return x.astype(np.float32, copy=False)


class PatchSampler(_Sampler):
    """Fresh patches every epoch for a patch classifier: batches ``(x, y)``.

    ``x`` (B, C, size, size) float32 (a list of them for several sizes or scales, as
    ``extract_patches``), ``y`` (B,) int64 centre labels. Each epoch draws ``patches_per_epoch``
    new centres (``balance`` as in ``extract_patches``), shuffled across images. Each patch is cut
    as the largest window asked for; with ``augment`` (an ``Augmenter``) that window is cut from
    one ``margin`` pixels wider on each side (default: half the window), augmented there together
    with its masks, and cut back, so that rotations bring in no empty corners, and the label is the
    augmented mask's centre pixel. Then ``standardizer`` (a fitted ``Standardizer``) is applied,
    pixels outside the FOV set to 0 when ``zero_outside_fov``, and last the smaller sizes are cut
    and the scales pooled: the patches equal ``extract_patches`` on images standardized the same
    way (``standardizer.transform(images, fov if zero_outside_fov else None)``).
    """

    def __init__(self, images, vessels, fov, size, *, batch_size=128, patches_per_epoch=10_000, balance=0.5,
                 scales=None, augment=None, standardizer=None, zero_outside_fov=False, margin=None, seed=0,
                 pad_mode="reflect"):
        super().__init__(images, vessels, fov, batch_size, patches_per_epoch, seed, augment, standardizer,
                         zero_outside_fov, "PatchSampler")
        if balance is not None:
            check_real(balance, "PatchSampler: balance (the fraction of vessel centres)", 0.0, 1.0)
        self.size, self.scales, self.balance, self.pad_mode = size, scales, balance, pad_mode
        self._views, self._as_list = _views(size, scales)
        self._largest = max(window for window, _ in self._views)
        self.margin = self._largest // 2 if margin is None else check_int(margin, "PatchSampler: margin", 0)

    def _centres(self, rng, balance=None):
        return super()._centres(rng, self.balance)

    def _batch(self, centres, rng):
        big = self._largest
        if self.augment is None:
            x = _cut(self.images, centres, big, self.pad_mode)
            fov = _cut(self.fov[:, None], centres, big, self.pad_mode)[:, 0]
            labels = (self.vessels[centres[:, 0], centres[:, 1], centres[:, 2]] > 0).astype(np.int64)
        else:
            x = np.empty((len(centres), self.images.shape[1], big, big), self.images.dtype)
            fov = np.empty((len(centres), big, big), bool)
            labels = np.empty(len(centres), np.int64)
            for k, (i, cy, cx) in enumerate(centres):
                x[k], vessels, fov[k] = self._augmented(rng, i, cy, cx, big, self.margin)
                labels[k] = vessels[big // 2, big // 2] > 0
        x = self._standardize(x, fov)
        views = []
        for window, factor in self._views:
            offset = big // 2 - window // 2
            view = x[:, :, offset:offset + window, offset:offset + window]
            if factor > 1:
                s = window // factor
                view = view.reshape(len(view), view.shape[1], s, factor, s, factor).mean(axis=(3, 5))
            views.append(np.ascontiguousarray(view, dtype=np.float32))
        return (views if self._as_list else views[0]), labels


class TileSampler(_Sampler):
    """Fresh image tiles every epoch for a fully convolutional network: batches ``(x, y, weight)``.

    ``x`` (B, C, size, size) float32, ``y`` (B, 1, size, size) float32 vessel masks, ``weight``
    (B, 1, size, size) float32 FOV masks (the per-pixel weight of a masked loss). Each epoch draws
    ``tiles_per_epoch`` tiles centred on random FOV pixels (shuffled across images) and moved
    inside the image; with ``augment`` each is augmented in a window ``margin`` pixels wider on
    each side (default: a quarter of the tile; mirrored beyond the image border) and cut back.
    Then ``standardizer`` (fitted) is applied, with pixels outside the FOV set to 0 when
    ``zero_outside_fov``.
    """

    def __init__(self, images, vessels, fov, size, *, batch_size=8, tiles_per_epoch=256, augment=None,
                 standardizer=None, zero_outside_fov=False, margin=None, seed=0):
        super().__init__(images, vessels, fov, batch_size, tiles_per_epoch, seed, augment, standardizer,
                         zero_outside_fov, "TileSampler")
        self.size = check_int(size, "TileSampler: size (the tile's side, in pixels)", 1)
        h, w = self.fov.shape[1:]
        if self.size > min(h, w):
            raise ValueError(f"TileSampler: tile size {self.size} is larger than the images ({h}x{w})")
        self.margin = self.size // 4 if margin is None else check_int(margin, "TileSampler: margin", 0)

    def _batch(self, centres, rng):
        s = self.size
        h, w = self.fov.shape[1:]
        x = np.empty((len(centres), self.images.shape[1], s, s), self.images.dtype)
        y = np.empty((len(centres), 1, s, s), np.float32)
        fov = np.empty((len(centres), s, s), bool)
        for k, (i, cy, cx) in enumerate(centres):
            if self.augment is None:
                top, left = min(max(cy - s // 2, 0), h - s), min(max(cx - s // 2, 0), w - s)
                x[k], vessels, fov[k] = self._window(i, top, left, s)
            else:
                x[k], vessels, fov[k] = self._augmented(rng, i, cy, cx, s, self.margin)
            y[k, 0] = vessels > 0
        return self._standardize(x, fov), y, fov[:, None].astype(np.float32)
