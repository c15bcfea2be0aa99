"""How much context does a pixel need? 5 x 5, 11 x 11 and 29 x 29 patch classifiers against the
dilated context network and a U-Net, on the same training patients, scored on the test patients.

The tutorial's argument: a 5 x 5 patch cannot tell the light reflex in the middle of a wide vessel
(bright, like background) or a dark spot from a vessel; a larger patch can, and a fully
convolutional network with a large receptive field (dilations, or a U-Net's poolings) sees more
still, for far less computation per pixel. The patch classifiers are trained on balanced patches
(half centred on vessels), the fully convolutional ones on tiles with a FOV-masked loss; all are
then run on every pixel of the whole test images (the patch classifiers made fully convolutional).
What came out on the synthetic retinas (5 x 5 < 11 x 11 < 29 x 29 <= U-Net in AUC at two seeds, as on
real DRIVE) is in ``docs/experiments/README.md``.
"""

from __future__ import annotations

import numpy as np

from .. import architectures as arch
from .. import losses, optimizers
from ..data import PatchSampler, TileSampler
from ..receptive_field import receptive_field
from ..training import recalibrate_batchnorm
from .common import (
    SMOKE_WHOLE,
    WHOLE,
    Clock,
    fcn_probabilities,
    fmt,
    machine,
    patch_probabilities,
    retina_split,
    say,
    scores,
    sensitivity_by_width,
    train_fcn,
    write_outputs,
)

NAME = "patch_sizes"

# patch size -> patch_cnn arguments: kernel sizes chosen so that every patch ends in a few features
PATCH_NETS = {
    5: dict(kernel_sizes=(3, 3), pool=1),      # 5 -> 3 -> 1
    11: dict(kernel_sizes=(3, 3), pool=2),     # 11 -> 9 -> 4 -> 2 -> 1
    29: dict(kernel_sizes=(5, 3), pool=2),     # 29 -> 25 -> 12 -> 10 -> 5 (the tutorial's ConvNet)
}


def train_patch_classifier(model, part, *, patches_per_epoch, epochs, batch_size=128, lr=2e-3, seed=0):
    """Train a two-class patch classifier on fresh balanced patches of the training crops every epoch."""
    sampler = PatchSampler(part.x, part.vessels, part.fov, model.input_shape[-1], batch_size=batch_size,
                           patches_per_epoch=patches_per_epoch, balance=0.5, seed=seed)
    model.compile(loss=losses.SoftmaxCrossEntropy(), optimizer=optimizers.Adam(lr))
    return model.fit(sampler, epochs=epochs, verbose=0)


def run(out, smoke=False, seed=0, verbose=1):
    """Train the five models and write ``patch_sizes.md / .png / .json`` to ``out``. Returns the results."""
    sizes = SMOKE_WHOLE if smoke else WHOLE
    split = retina_split(sizes, seed)
    # The two fully convolutional nets see the same number of labelled pixels per epoch: 40 batches of
    # two 192-px tiles (2.9 M) for the dilated net, 80 batches of eight 64-px tiles (2.6 M) for the U-Net.
    budget = dict(patches=200, patch_epochs=1, tile_steps=2, unet_steps=2, tile_epochs=1, tile=32, dilated_tile=32) \
        if smoke else dict(patches=8000, patch_epochs=6, tile_steps=40, unet_steps=80, tile_epochs=6, tile=64,
                           dilated_tile=192)
    rows, results, maps = [], [], {}
    models = [(f"patch {p}x{p}", "patch", p) for p in PATCH_NETS] + [("dilated context net", "dilated", None),
                                                                     ("U-Net", "unet", None)]
    for label, kind, p in models:
        with Clock() as clock:
            if kind == "patch":
                model = arch.patch_cnn(p, filters=(16, 32), dense_units=64, seed=seed, **PATCH_NETS[p])
                train_patch_classifier(model, split.train, patches_per_epoch=budget["patches"],
                                       epochs=budget["patch_epochs"], seed=seed)
                training = f"{budget['patch_epochs']} x {budget['patches']} balanced patches"
            else:
                if kind == "dilated":  # its receptive field (131 px) wants large tiles
                    model = arch.dilated_context_net(3, width=8, batchnorm=True, seed=seed)
                    size, batch, steps = budget["dilated_tile"], 2, budget["tile_steps"]
                else:
                    model = arch.unet(3, depth=2, width=8, seed=seed)
                    size, batch, steps = budget["tile"], 8, budget["unet_steps"]
                train_fcn(model, split.train, steps=steps, epochs=budget["tile_epochs"], tile=size,
                          batch_size=batch, seed=seed)
                if kind == "dilated":  # batches of two tiles: the moving averages are too noisy to infer with
                    recalibrate_batchnorm(model, TileSampler(split.train.x, split.train.vessels, split.train.fov,
                                                             size, batch_size=batch,
                                                             tiles_per_epoch=budget["tile_steps"] * batch,
                                                             seed=seed + 1))
                training = f"{budget['tile_epochs']} x {steps} batches of {batch} tiles {size}x{size}"
        train_seconds, load = clock.seconds, clock.load
        with Clock() as clock:
            predict = patch_probabilities if kind == "patch" else fcn_probabilities
            prob_val, prob_test = predict(model, split.val.x), predict(model, split.test.x)
        s = scores(prob_val, prob_test, split)
        wide, thin = sensitivity_by_width(prob_test, split.test, s["threshold"])
        field = p if kind == "patch" else receptive_field(model)[-1]
        maps[label] = prob_test[0]
        result = dict(model=label, params=model.count_params(), context=field, training=training, **s,
                      sensitivity_wide=wide, sensitivity_thin=thin, train_seconds=train_seconds,
                      predict_seconds=clock.seconds, load=load)
        results.append(result)
        rows.append([label, fmt(result["params"]), f"{field}", fmt(s["auc"]), fmt(s["dice"]), fmt(wide), fmt(thin),
                     f"{train_seconds:.0f}", f"{clock.seconds:.1f}", load, training])
        say(verbose, f"{label}: AUC {s['auc']:.4f} Dice {s['dice']:.4f} sensitivity wide {wide:.3f} thin {thin:.3f} "
                     f"({train_seconds:.0f} s + {clock.seconds:.1f} s, load {load})")
    header = ["model", "parameters", "context (px)", "test AUC", "test Dice", "sensitivity, wide vessels",
              "sensitivity, thin vessels", "training (s)", "inference, val + test (s)", "load", "training data"]
    notes = [f"Data: {sizes.describe()}; seed {seed}. Training patches and tiles are drawn from the whole "
             "training images; every pixel of the validation and test images is scored.",
             "Scores: mean over the test images, inside the FOV; Dice and sensitivities at the threshold with the "
             "best validation Dice. Wide vessels: vessel pixels in vessels at least 5 px across (where the "
             "light reflex is); thin: the other vessel pixels.",
             "Patch classifiers: `arch.patch_cnn(p, filters=(16, 32), dense_units=64)` (kernels "
             "3-3 without pooling for 5, 3-3 with pooling for 11, 5-3 with pooling for 29), Adam 2e-3, batch 128, "
             "the same number of fresh balanced patches for each, run on whole images via `to_fully_convolutional`. "
             "Dilated: `arch.dilated_context_net(3, width=8, batchnorm=True)` (dilations 1, 1, 2, 4, 8, 16, 32, 1; "
             "without batch norm, and on tiles smaller than its 131-px field, it trained far slower: see the "
             "experiments README); after training, its BatchNorm statistics are recomputed as the mean over "
             "40 fresh training batches (`hp.training.recalibrate_batchnorm`): the moving averages of batches "
             "of two tiles gave AUC 0.948 / 0.902 at seeds 0 / 1, the recomputed ones 0.959 / 0.930. "
             "U-Net: `arch.unet(3, depth=2, width=8)`. Both: BCE on logits masked by the FOV, Adam 2e-3. "
             "No augmentation, no regularization.",
             f"Machine: {machine()}. Times are wall-clock seconds on a shared machine; 'load' is its 1-minute "
             "load average at the start and end of the training (2 cores: at a load of 4 each process gets "
             "about half a core), so the times compare models of one run better than runs."]
    fig = _figure(split, maps, results)
    paths = write_outputs(out, NAME, "Patch size vs dilated network vs U-Net", header, rows, notes, fig,
                          dict(sizes=sizes.__dict__, seed=seed, patients=split.patients, results=results))
    return dict(results=results, paths=paths)


def _figure(split, maps, results):
    from ..viz.figure import Figure

    n = len(maps)
    fig = Figure(figsize=(2.2 * (n + 2), 5.0))
    grid = fig.add_gridspec(2, n + 2, height_ratios=(1.0, 0.9))
    window = _zoom(split.test.data.images[0], 192)
    image = split.test.data.images[0].transpose(1, 2, 0)[window]
    panels = [("test image (zoom)", image, None), ("truth", split.test.vessels[0][window], "gray")]
    panels += [(label, (m * split.test.fov[0])[window], "magma") for label, m in maps.items()]
    for k, (title, a, cmap) in enumerate(panels):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(a, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(len(results))
    ax.bar(x - 0.2, [r["auc"] for r in results], 0.4, label="test AUC")
    ax.bar(x + 0.2, [r["dice"] for r in results], 0.4, label="test Dice")
    ax.set_xticks(x, [f"{r['model']}\n{r['params']:,} params" for r in results], fontsize=8)
    ax.set_ylim(max(0.0, min(min(r["auc"], r["dice"]) for r in results) - 0.05), 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _zoom(image, size):
    """(rows, cols) slices of a ``size`` square around the optic disc (the brightest blurred spot),
    where a small context is most easily fooled."""
    from scipy import ndimage

    h, w = image.shape[1:]
    size = min(size, h, w)
    blurred = ndimage.uniform_filter(image.mean(axis=0), size=max(3, min(h, w) // 12))
    cy, cx = np.unravel_index(np.argmax(blurred), blurred.shape)
    top, left = int(np.clip(cy - size // 2, 0, h - size)), int(np.clip(cx - size // 2, 0, w - size))
    return slice(top, top + size), slice(left, left + size)
