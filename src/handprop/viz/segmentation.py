"""Figures of the vessel-segmentation task: predictions and their errors, ROC curves, patches, augmentations.

* ``plot_segmentation(image, vessels, probabilities, fov)``: the photograph, the ground truth, the
  probability map and an error map inside the FOV (true positives white, false positives orange,
  false negatives blue; outside the FOV grey), with the in-FOV Dice and AUC in the title.
* ``plot_roc_curves({"name": (scores, vessels, fov), ...})``: in-FOV ROC curves of several models
  (or of a green-channel threshold) on one axes, with their AUCs in the legend.
* ``plot_patches(patches, labels)``: a grid of patches with their centre labels.
* ``plot_augmentations(image, vessels, fov, augmenter)``: one image and its masks augmented
  several times.

Each returns a ``matplotlib.figure.Figure`` not registered with pyplot (see ``handprop.viz``).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import to_numpy
from .figure import Figure

__all__ = ["plot_segmentation", "plot_roc_curves", "plot_patches", "plot_augmentations", "error_map",
           "ERROR_COLOURS"]

# colour-blind-safe pair for the two kinds of error (orange / blue), white hits, black background
ERROR_COLOURS = {
    "true_positive": (1.0, 1.0, 1.0),
    "false_positive": (0.90, 0.38, 0.0),
    "false_negative": (0.23, 0.46, 0.85),
    "true_negative": (0.0, 0.0, 0.0),
    "outside_fov": (0.35, 0.35, 0.35),
}


def _rgb(image):
    """(H, W, 3) or (H, W) array in [0, 1] for imshow, from (3, H, W), (1, H, W) or (H, W)."""
    image = to_numpy(image).astype(np.float32)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
        image = image[..., 0] if image.shape[-1] == 1 else image
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (3, H, W), (1, H, W) or (H, W), got shape {image.shape}")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 1:  # standardized: rescale for display
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return image


def _plane(a, name):
    a = to_numpy(a)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"plot_segmentation: {name} must be (H, W), got shape {a.shape}")
    return a


def error_map(prediction, vessels, fov=None):
    """(H, W, 3) float RGB picture of a binary prediction's hits and errors (colours: ``ERROR_COLOURS``)."""
    pred, truth = np.asarray(prediction, bool), np.asarray(vessels) > 0
    out = np.zeros(pred.shape + (3,), np.float32)
    for kind, where in (("true_positive", pred & truth), ("false_positive", pred & ~truth),
                        ("false_negative", ~pred & truth), ("true_negative", ~pred & ~truth)):
        out[where] = ERROR_COLOURS[kind]
    if fov is not None:
        out[~np.asarray(fov, bool)] = ERROR_COLOURS["outside_fov"]
    return out


def plot_segmentation(image, vessels=None, probabilities=None, fov=None, *, threshold=0.5, title=None,
                      figsize=None):
    """The image, its ground truth, the predicted probabilities and the errors inside the FOV.

    Parameters
    ----------
    image : (3, H, W) or (H, W) array (shown as is when in [0, 1], rescaled otherwise)
    vessels : (H, W) {0, 1} ground truth, optional
    probabilities : (H, W) or (1, H, W) vessel probabilities, optional
    fov : (H, W) bool, optional: metrics and the error map are restricted to it, and the
        probability map is drawn as 0 outside it
    threshold : the prediction is ``probabilities > threshold``

    Returns
    -------
    Figure with one panel each for what is given: image, ground truth, probabilities, and (with
    both ground truth and probabilities) the error map: true positives white, false positives
    orange, false negatives blue, outside the FOV grey. The title gives the in-FOV Dice and AUC.
    """
    from .. import metrics

    panels = [("image", _rgb(image), {})]
    truth = None if vessels is None else _plane(vessels, "vessels")
    prob = None if probabilities is None else _plane(probabilities, "probabilities")
    mask = None if fov is None else _plane(fov, "fov").astype(bool)
    if truth is not None:
        panels.append(("ground truth", truth, {"cmap": "gray", "vmin": 0, "vmax": 1}))
    if prob is not None:  # outside the FOV the network's output means nothing: drawn as 0
        shown = prob if mask is None else np.where(mask, prob, 0)
        panels.append(("vessel probability", shown, {"cmap": "magma", "vmin": 0, "vmax": 1}))
    summary = ""
    if truth is not None and prob is not None:
        panels.append(("errors: FP orange, FN blue", error_map(prob > threshold, truth, mask), {}))
        where = "in the FOV" if mask is not None else "whole image"
        summary = (f"Dice {metrics.dice(prob, truth, mask, threshold):.3f}, "
                   f"AUC {metrics.roc_auc(prob, truth, mask):.3f} ({where}, threshold {threshold:g})")
    fig = Figure(figsize=figsize or (3.2 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, picture, style) in zip(axes, panels):
        shown = ax.imshow(picture, interpolation="nearest", **style)
        if name == "vessel probability":
            fig.colorbar(shown, ax=ax, shrink=0.8)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    if title or summary:
        fig.suptitle(" — ".join(t for t in (title, summary) if t))
    return fig


def plot_roc_curves(curves, *, title=None, figsize=(7.6, 5.4), max_points=2000, xlim=(0.0, 1.0)):
    """ROC curves of several models on one axes, with their AUCs in the legend.

    ``curves``: a dict ``name -> (scores, vessels)`` or ``name -> (scores, vessels, fov)``: arrays of
    any shape (several images stacked are pooled into one curve), computed inside ``fov`` when
    given. ``max_points``: each curve is thinned to about this many points for drawing (the AUC is
    computed on all of them). ``xlim=(0, 0.3)`` zooms on the low false-positive rates.
    """
    from .. import metrics

    if not curves:
        raise ValueError("plot_roc_curves: no curves given")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for name, args in curves.items():
        if len(args) not in (2, 3):
            raise ValueError(f"plot_roc_curves: {name!r} must map to (scores, vessels) or (scores, vessels, fov)")
        scores, truth = args[0], args[1]
        mask = args[2] if len(args) == 3 else None
        fpr, tpr, _ = metrics.roc_curve(scores, truth, mask, drop_intermediate=True)
        auc = metrics.roc_auc(scores, truth, mask)
        if len(fpr) > max_points:
            keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).astype(np.int64), len(fpr) - 1])
            fpr, tpr = fpr[keep], tpr[keep]
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1, label="chance")
    ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title or "ROC curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def plot_patches(patches, labels=None, *, n=32, cols=8, channel=None, seed=None, title=None, box=None):
    """A grid of patches (N, C, s, s), the centre pixel marked.

    Each patch is stretched to its own [min, max] (all channels together, so colours are kept).
    Vessels show best in the green channel: ``channel=1`` draws it in grey.

    ``labels`` (N,) {0, 1}: each title says "vessel" or "background" (and the frame is coloured).
    ``n`` patches are shown: the first ``n``, or a random ``n`` with ``seed``. ``channel``: draw that
    channel in grey (default: colour for 3 channels, grey for one). ``box``: the side of a centred
    square to outline in every patch (e.g. ``box=5``: what a 5×5 classifier sees of an 11×11 patch).
    """
    patches = to_numpy(patches)
    if patches.ndim != 4:
        raise ValueError(f"plot_patches: patches must be (N, C, s, s), got shape {patches.shape}")
    index = np.arange(len(patches))
    if seed is not None:
        index = np.random.default_rng(seed).permutation(index)
    index = index[:n]
    rows = max(1, math.ceil(len(index) / cols))
    used_cols = min(cols, max(len(index), 1))
    fig = Figure(figsize=(max(1.7 * used_cols + 0.3, 7.6), 1.8 * rows + 0.6), layout="constrained")
    s = patches.shape[-1]
    for k, i in enumerate(index):
        ax = fig.add_subplot(rows, used_cols, k + 1)
        patch = patches[i]
        if channel is not None or patch.shape[0] != 3:
            picture = patch[channel or 0]
            lo, hi = float(picture.min()), float(picture.max())
            ax.imshow(picture, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        else:
            picture = patch.transpose(1, 2, 0)
            lo, hi = float(picture.min()), float(picture.max())
            ax.imshow((picture - lo) / (hi - lo) if hi > lo else np.zeros_like(picture), interpolation="nearest")
        ax.plot([s // 2], [patches.shape[-2] // 2], "+", color="yellow", markersize=5, markeredgewidth=0.8)
        if box is not None:
            corner = (s // 2 - box // 2 - 0.5, patches.shape[-2] // 2 - box // 2 - 0.5)
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle(corner, box, box, fill=False, edgecolor="yellow", linewidth=1.5))
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            vessel = bool(to_numpy(labels)[i])
            colour = ERROR_COLOURS["false_positive"] if vessel else ERROR_COLOURS["false_negative"]
            ax.set_title("vessel" if vessel else "background", fontsize=12, color=colour)
            for spine in ax.spines.values():
                spine.set_color(colour)
                spine.set_linewidth(2)
    fig.suptitle(title or f"{len(index)} patches of {patches.shape[-2]}×{s}")
    return fig


def plot_augmentations(image, vessels, fov, augmenter, *, n=5, seed=0, title=None):
    """The original and ``n`` augmentations of one image: images on top, vessel masks (FOV outlined) below.

    ``augmenter(image, vessels, fov, rng)`` is called with one ``np.random.default_rng(seed)``
    shared by the ``n`` draws, so the figure is reproducible.
    """
    rng = np.random.default_rng(seed)
    image = to_numpy(image)
    samples = [("original", image, to_numpy(vessels), to_numpy(fov))]
    for k in range(n):
        samples.append((f"augmented {k + 1}", *augmenter(image, to_numpy(vessels), to_numpy(fov), rng)))
    fig = Figure(figsize=(max(2.3 * len(samples), 7.6), 4.8), layout="constrained")
    axes = fig.subplots(2, len(samples), squeeze=False)
    for col, (name, img, ves, mask) in enumerate(samples):
        axes[0, col].imshow(_rgb(img), interpolation="nearest")
        axes[0, col].set_title(name)
        axes[1, col].imshow(ves, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if mask is not None and np.any(mask) and not np.all(mask):
            axes[1, col].contour(np.asarray(mask, np.float32), levels=[0.5], colors=[ERROR_COLOURS["false_positive"]],
                                 linewidths=0.8)
        for row in range(2):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    axes[1, 0].set_ylabel("vessels (FOV outlined)")
    fig.suptitle(title or "augmentation: image and masks transformed together")
    return fig
