# %% [markdown]
# # Chapter 7 — Beyond
#
# Four ideas from the end of the tutorial, each small enough to run here:
#
# 1. **multi-scale** networks: a small patch for detail and a large one for context, one branch
#    each, merged;
# 2. **2.5-D and 3-D**: classifying a voxel of a 3-D scan from three orthogonal patches (a
#    *triplanar* network) or from the whole cube around it (a **3-D CNN**);
# 3. **autoencoders** used for pre-training;
# 4. a small **generative adversarial network** (GAN) that learns to draw digits.
#
# > **Quick mode.** `QUICK` (next cell) makes every training run shorter so that the automated tests
# > run this notebook quickly. It is `False` unless the environment sets `HANDPROP_QUICK=1`; the
# > GAN in particular draws only blobs in quick mode.

# %% tags=["setup"]
import os
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp
from handprop import architectures as arch
from handprop import segmentation as seg

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("07_beyond")  # the numbers this chapter states (see hp.lesson)
hp.set_num_threads(1)  # small models run fastest on one thread, and a shared server stays responsive
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Multi-scale networks
#
# A 9×9 patch sees a vessel; it cannot see whether the dark line it contains continues, branches or
# ends in a dark spot (a haemorrhage, not a vessel). A 27×27 patch sees that context, but one
# network on 27×27 pixels spends most of its weights far from the pixel it decides about. A
# **multi-scale** network runs one convolutional branch per patch size, all centred on the same
# pixel, and lets a shared head combine them (`arch.multiscale_patch_net`, built with the graph API:
# several `hp.Input`s, `Concatenate`).
#
# The data of chapter 6: synthetic retinas at half DRIVE size, each normalized on its own, split by
# patient into training, validation and test patients. `PatchSampler` with `size=[9, 27]` cuts both
# patches around the same centres. As everywhere in the course, the two networks are compared on
# the validation patients, and the test patients are used once, for the network that comparison
# chooses.

# %%
data = hp.data.synthetic_retina(8, size=(292, 282), seed=0)
train_ids, val_ids, test_ids = hp.data.split_patients(data, (0.625, 0.125, 0.25), seed=0)
train, val, test = data[train_ids], data[val_ids], data[test_ids]
x_train, x_val, x_test = seg.normalize_images(train), seg.normalize_images(val), seg.normalize_images(test)
(x9_val, x27_val), y_val = hp.data.extract_patches(x_val, val.vessels, val.fov, [9, 27], 1000, balance=0.5, seed=1)
(x9_test, x27_test), y_test = hp.data.extract_patches(x_test, test.vessels, test.fov, [9, 27], 1000, balance=0.5,
                                                      seed=2)

multi = arch.multiscale_patch_net(patch_sizes=(9, 27), filters=(16, 32), dense_units=64)
single = arch.patch_cnn(9, filters=(16, 32), kernel_sizes=(3, 3), dense_units=64)
multi.summary();

# %%
ms_epochs = 3 if QUICK else 8
scores, weights = {}, {}
for name, model, pick in (("9×9 only", single, lambda x: x[0]), ("9×9 + 27×27", multi, lambda x: x)):
    sampler = hp.data.PatchSampler(x_train, train.vessels, train.fov, [9, 27], batch_size=64,
                                   patches_per_epoch=2000 if QUICK else 4000, balance=0.5, seed=0)
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(1e-3), metrics=["accuracy"])
    start = time.perf_counter()
    for epoch in range(ms_epochs):  # the single-scale network takes only the 9x9 part of each batch
        model.fit([(pick(x), y) for x, y in sampler.epoch(epoch)], epochs=1, verbose=0)
    probability = hp.layers.activations.softmax(model.predict(pick([x9_val, x27_val])))[:, 1]
    scores[name] = (hp.metrics.accuracy(probability, y_val), hp.metrics.roc_auc(probability, y_val))
    weights[name] = model.count_params()
    print(f"{name:12s}: {model.count_params():6,} weights, {time.perf_counter() - start:4.0f} s; validation patients: "
          f"accuracy {scores[name][0]:.3f}, AUC {scores[name][1]:.3f} (balanced patches)")

# %%
single_name, multi_name = "9×9 only", "9×9 + 27×27"
gain = scores[multi_name][0] - scores[single_name][0]
results.effect("context_branch", gain, 0.02,
              "The context branch helps here: validation accuracy {multi:.3f} against {single:.3f} ({gain:+.1f} "
              "points; AUC {multi_auc:.3f} against {single_auc:.3f}) on balanced patches: a dark line that continues "
              "is a vessel, a dark spot or the rim of the optic disc, which look alike from up close, is not.",
              "The context branch hurts at this size and training budget: validation accuracy {multi:.3f} against "
              "{single:.3f} for the 9×9 network alone ({gain:+.1f} points; AUC {multi_auc:.3f} against "
              "{single_auc:.3f}). The larger network has more to learn in the same few epochs.",
              "The context branch makes no clear difference at this size and training budget: validation accuracy {multi:.3f} "
              "against {single:.3f} for the 9×9 network alone ({gain:+.1f} points; AUC {multi_auc:.3f} against "
              "{single_auc:.3f}): within the noise of one run on one validation patient.",
              multi=scores[multi_name][0], single=scores[single_name][0], gain=100 * gain,
              multi_auc=scores[multi_name][1], single_auc=scores[single_name][1])
results.say("It costs a second branch: {ratio:.1f} times the weights ({multi_w:,} against {single_w:,}), and "
            "{pixels:.0f} times the pixels per decision (9² + 27² = {both:,} against 9² = 81).",
            pixels=(9**2 + 27**2) / 9**2, both=9**2 + 27**2, ratio=weights[multi_name] / weights[single_name],
            multi_w=weights[multi_name], single_w=weights[single_name])
chosen = max(scores, key=lambda name: scores[name][0])
chosen_model = multi if chosen == multi_name else single
chosen_input = [x9_test, x27_test] if chosen == multi_name else x9_test
test_probability = hp.layers.activations.softmax(chosen_model.predict(chosen_input))[:, 1]
results.say("The test patients, once, for the network the validation patients chose ({name}): accuracy {acc:.3f}, "
            "AUC {auc:.3f} on balanced patches.", name=chosen, acc=hp.metrics.accuracy(test_probability, y_test),
            auc=hp.metrics.roc_auc(test_probability, y_test))

# %% [markdown]
#
# (`sampler.epoch(e)` gives the batches of epoch `e`; `fit` also takes a list of `(x, y)` batches,
# which is how the single-scale network gets only the 9×9 part of each batch here.)
#
# ## 2. 3-D: triplanar networks and 3-D CNNs
#
# CT and MR scans are volumes. To classify a voxel of a vessel tree in 3-D, a network can look at
#
# * three orthogonal 2-D patches through it — **axial** (fixed $z$), **coronal** (fixed $y$),
#   **sagittal** (fixed $x$) — one 2-D branch each (a **triplanar** or 2.5-D network); or
# * the whole cube around it, with **3-D convolutions**.
#
# A 3-D convolution has a $k \times k \times k$ kernel for every pair of input and output channels:
#
# $$y[n, f, d, i, j] = b[f] + \sum_{c} \sum_{t, r, s} W[f, c, t, r, s]\; x[n, c, d + t, i + r, j + s],$$
#
# $k$ times the weights of a 2-D one, and $s$ times more output positions on an $s^3$ cube than on
# an $s^2$ patch. `hp.data.synthetic_vessel_volume` draws bright tubes of radius 1–3 voxels
# through a noisy, blurred background; volumes with other seeds are our other patients: one for
# validation, one for the test.

# %%
volume, mask = hp.data.synthetic_vessel_volume((48, 48, 48), seed=0)
volume_val, mask_val = hp.data.synthetic_vessel_volume((48, 48, 48), seed=2)
volume_test, mask_test = hp.data.synthetic_vessel_volume((48, 48, 48), seed=1)
print("volume", volume.shape, f"{mask.mean():.1%} vessel voxels")

# %% tags=["figure"]
z, y, x = (s // 2 for s in mask.shape)
views = {"axial (z = 24)": (volume[0, z], mask[z]), "coronal (y = 24)": (volume[0, :, y], mask[:, y]),
         "sagittal (x = 24)": (volume[0, :, :, x], mask[:, :, x]),
         "max. projection along z": (volume[0].max(axis=0), mask.max(axis=0))}
fig, axes = plt.subplots(2, 4, figsize=(11, 5.8))
for col, (name, (picture, truth)) in enumerate(views.items()):
    axes[0, col].imshow(picture, cmap="gray")
    axes[1, col].imshow(truth, cmap="gray")
    axes[0, col].set_title(name)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("volume")
axes[1, 0].set_ylabel("vessel mask")
plt.show()

# %% [markdown]
# A 3-D convolution with a hand-made kernel: the 3×3×3 mean. Averaging 27 voxels divides the
# standard deviation of independent noise by $\sqrt{27} \approx 5$, while a tube of radius one voxel
# or more keeps most of its brightness: the tubes should stand out better. The in-volume ROC AUC of
# the intensity as a vessel score, before and after, says whether they do.

# %% tags=["figure"]
mean3 = hp.layers.Conv3D(1, 3, padding="same", use_bias=False)
mean3.build((1, 48, 48, 48), dtype=np.float64)
mean3.params["W"] = np.full((1, 1, 3, 3, 3), 1 / 27)  # (filters, channels, depth, rows, cols)
smoothed = mean3.forward(volume[None].astype(np.float64))[0, 0]
print("Conv3D weights", mean3.params["W"].shape, "->", smoothed.shape, f"({mean3.count_params()} weights: 3³)")
raw_auc, smoothed_auc = hp.metrics.roc_auc(volume[0], mask), hp.metrics.roc_auc(smoothed, mask)
results.claim("mean_filter_separates_tubes", smoothed_auc > raw_auc,
              "AUC of the raw intensity {raw:.3f}, after the 3×3×3 mean {smooth:.3f}: the tubes stand out better.",
              "AUC of the raw intensity {raw:.3f}, after the 3×3×3 mean {smooth:.3f}: averaging did not help here.",
              raw=raw_auc, smooth=smoothed_auc)
fig, axes = plt.subplots(1, 2, figsize=(8, 4.4))
for ax, (name, picture) in zip(axes, (("axial slice", volume[0, z]), ("after the 3×3×3 mean", smoothed[z]))):
    ax.imshow(picture, cmap="gray")
    ax.set_title(name)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# Now learned filters. `hp.data.sample_voxel_centres` draws voxels, half inside the tubes;
# `extract_triplanar_patches` cuts the three 15×15 planes through each, `extract_cubes` the 15×15×15
# cube (zero outside the volume). Three models with two convolution blocks each: a triplanar network
# (three branches), the same with **shared** weights (one branch applied to all three planes), and a
# 3-D CNN.

# %%
S = 15
centres = hp.data.sample_voxel_centres(mask, 1200 if QUICK else 3000, seed=0)
centres_val = hp.data.sample_voxel_centres(mask_val, 1000, seed=2)
centres_test = hp.data.sample_voxel_centres(mask_test, 1000, seed=1)
planes, labels = hp.data.extract_triplanar_patches(volume, mask, centres, S)
planes_val, labels_val = hp.data.extract_triplanar_patches(volume_val, mask_val, centres_val, S)
planes_test, labels_test = hp.data.extract_triplanar_patches(volume_test, mask_test, centres_test, S)
cubes, _ = hp.data.extract_cubes(volume, mask, centres, S)
cubes_val, _ = hp.data.extract_cubes(volume_val, mask_val, centres_val, S)
cubes_test, _ = hp.data.extract_cubes(volume_test, mask_test, centres_test, S)
print("planes:", [p.shape for p in planes], " cubes:", cubes.shape)

models = {"triplanar": (arch.triplanar_net(S), planes, planes_val),
          "triplanar, shared weights": (arch.triplanar_net(S, shared_weights=True), planes, planes_val),
          "3-D CNN": (arch.cnn3d(S), cubes, cubes_val)}
results_3d = {}
for name, (model, x, x_val3) in models.items():
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(1e-3), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, labels, epochs=3 if QUICK else 8, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_val3, labels_val)[1]
    results_3d[name] = (model.count_params(), seconds, accuracy)
    print(f"{name:26s}: {model.count_params():6,} weights, {seconds:4.0f} s to train, accuracy on the validation "
          f"volume {accuracy:.3f}")

# %%
acc3d = {name: value[2] for name, value in results_3d.items()}
best_2d = max(acc3d["triplanar"], acc3d["triplanar, shared weights"])
results.effect("cnn3d_vs_triplanar", acc3d["3-D CNN"] - best_2d, 0.02,
              "The 3-D CNN is better here (validation accuracy {cnn3d:.3f} against {best2d:.3f} for the better "
              "triplanar network), and it took {slower:.1f} times as long to train.",
              "On these tubes the 3-D CNN is worse than the triplanar networks (validation accuracy {cnn3d:.3f} "
              "against {best2d:.3f}), and it took {slower:.1f} times as long to train.",
              "On these tubes all three do well, and the 3-D CNN is **not** better here (validation accuracy "
              "{cnn3d:.3f} against {best2d:.3f} for the better triplanar network), while it took {slower:.1f} times "
              "as long to train: it convolves every voxel of the cube (3,375 numbers against the planes' 675).",
              cnn3d=acc3d["3-D CNN"], best2d=best_2d,
              slower=results_3d["3-D CNN"][1] / max(results_3d["triplanar"][1], 1e-9))
results.effect("shared_plane_weights", acc3d["triplanar, shared weights"] - acc3d["triplanar"], 0.02,
              "Sharing the weights between the planes cuts the convolution weights by three (the planes of an "
              "isotropic volume look alike) and even helped: {shared:.3f} against {separate:.3f}.",
              "Sharing the weights between the planes cost accuracy here: {shared:.3f} against {separate:.3f}.",
              "Sharing the weights between the planes cuts the convolution weights by three (the planes of an "
              "isotropic volume look alike) and did no harm: {shared:.3f} against {separate:.3f}.",
              shared=acc3d["triplanar, shared weights"], separate=acc3d["triplanar"])
chosen_3d = max(acc3d, key=acc3d.get)
chosen_x = cubes_test if chosen_3d == "3-D CNN" else planes_test
results.say("On the test volume, once, the network the validation volume chose ({name}): accuracy {acc:.3f}.",
            name=chosen_3d, acc=models[chosen_3d][0].evaluate(chosen_x, labels_test)[1])

# %% [markdown]
# The 3-D CNN's advantage — following a tube that leaves the three planes — matters little for
# these thick, fairly straight tubes. On real scans the
# balance depends on the structures, on how anisotropic the voxels are, and on memory: a 3-D
# network on whole volumes needs far more of it than a 2.5-D one.

# %% [markdown]
# ### Real anatomy: grey and white matter in the MNI152 brain
#
# Tubes are a toy. `hp.data.mni_brain()` is a real anatomy: a 64×96×96-voxel crop (1 mm voxels,
# from the basal ganglia up to the top of the lateral ventricles) of the **MNI ICBM152 2009**
# template, an average of 152 adult brains, with its grey- and white-matter probability maps (it
# ships inside handprop, 1.4 MB; licence notice in `MNI_BRAIN_LICENSE.md`). The task: is a voxel of
# brain tissue **grey** or **white** matter?
#
# An average of 152 scans has almost no noise, and on it the T1 intensity alone would nearly solve
# the task. A single scan has noise and a slowly varying brightness (the coil's *bias field*), so
# `mni_brain(noise=..., bias=..., seed=...)` simulates one: Rician noise and a smooth
# multiplicative field; another seed is another scan of the same anatomy. The label is the more
# likely tissue where grey + white ≥ 0.5 (elsewhere CSF or outside the brain: not scored).
#
# Data discipline in 3-D: the volume is cut into slabs along $z$. Training voxels come from the
# lower 28 slices of scan 0, validation voxels (watched during training, never trained on) from
# the next 8, and test voxels from the upper 28 slices of **another scan** (seed 1), touched once
# at the end. The slabs are cut apart before patches are taken, so no patch reaches across.

# %%
brain = hp.data.mni_brain(noise=0.15, bias=0.1, seed=0)  # "scan 0": training and validation slabs
brain_test = hp.data.mni_brain(noise=0.15, bias=0.1, seed=1)  # "scan 1": the test slab
slabs = {"train": slice(0, 28), "validation": slice(28, 36), "test": slice(36, 64)}


def slab(scan, part):
    """The part's slices of a scan: T1 (1, d, 96, 96), white-matter label and tissue mask (d, 96, 96)."""
    z = slabs[part]
    return scan.t1[:, z], scan.white[z], scan.tissue[z]


def tissue_voxels(white, tissue, n, seed):
    """n voxel coordinates (z, y, x) of brain tissue, half grey and half white matter."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.argwhere(tissue & (white == label)), n // 2, replace=False) for label in (0, 1)]
    return rng.permutation(np.concatenate(picks))


t1_train, white_train, tissue_train = slab(brain, "train")
t1_val, white_val, tissue_val = slab(brain, "validation")
t1_test, white_test, tissue_test = slab(brain_test, "test")
print(f"crop {brain.t1.shape[1:]} voxels of 1 mm; brain tissue {brain.tissue.mean():.0%} of them, "
      f"white matter {brain.white[brain.tissue].mean():.0%} of the tissue")

# %% tags=["figure"]
zc, yc, xc = 20, 48, 30  # a voxel in the training slab: the three planes through it
clean = hp.data.mni_brain()  # the template itself, for comparison
views = [("axial", lambda v: v[zc]), ("coronal", lambda v: v[:, yc]), ("sagittal", lambda v: v[:, :, xc])]
scan_max = float(np.percentile(brain.t1, 99.5))  # the noisy scan goes above 1: show its whole range
rows = [("template T1", clean.t1[0], "gray", 1.0), ("simulated scan", brain.t1[0], "gray", scan_max),
        ("P(white matter)", brain.wm, "viridis", 1.0)]
fig, axes = plt.subplots(3, 3, figsize=(9, 7.2), layout="constrained")
for r, (row_name, array, cmap, vmax) in enumerate(rows):
    for c, (view_name, cut) in enumerate(views):
        shown = axes[r, c].imshow(cut(array), cmap=cmap, vmin=0, vmax=vmax, origin="lower")
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if r == 0:
            axes[r, c].set_title(view_name)
    axes[r, 0].set_ylabel(row_name)
    fig.colorbar(shown, ax=axes[r, :], shrink=0.8)
fig.suptitle("MNI152 crop: three planes through one voxel (coronal and sagittal: superior up)")
plt.show()

# %% [markdown]
# Two baselines with no learning — the intensity of the voxel, and its mean over the 3×3×3 cube
# (the `Conv3D` above) — and the two networks of the tubes, on 11-voxel patches: the triplanar
# network (three 11×11 planes) and the 3-D CNN (the 11×11×11 cube). Same optimizer, same number of
# epochs, fixed in advance; the validation slab is watched during training, the test slab is used
# once, here.

# %%
S3 = 11
n_voxels = 1000 if QUICK else 3000
c_train = tissue_voxels(white_train, tissue_train, n_voxels, seed=0)
c_val = tissue_voxels(white_val, tissue_val, 400 if QUICK else 1000, seed=1)
c_test = tissue_voxels(white_test, tissue_test, 2000, seed=2)
brain_inputs = {}
for part, (t1, white, centres) in {"train": (t1_train, white_train, c_train), "validation": (t1_val, white_val, c_val),
                                   "test": (t1_test, white_test, c_test)}.items():
    planes3, labels3 = hp.data.extract_triplanar_patches(t1, white, centres, S3)
    cubes3, _ = hp.data.extract_cubes(t1, white, centres, S3)
    brain_inputs[part] = {"triplanar": planes3, "3-D CNN": cubes3, "labels": labels3}
y_brain_test = brain_inputs["test"]["labels"]

mean_brain = hp.layers.Conv3D(1, 3, padding="same", use_bias=False)  # the 3x3x3 mean again, for this volume
mean_brain.build(t1_test.shape, dtype=np.float64)
mean_brain.params["W"] = np.full((1, 1, 3, 3, 3), 1 / 27)
t1_test_mean = mean_brain.forward(t1_test[None].astype(np.float64))[0, 0]
brain_scores = {"intensity": hp.metrics.roc_auc(t1_test[0][tuple(c_test.T)], y_brain_test),
                "3×3×3 mean": hp.metrics.roc_auc(t1_test_mean[tuple(c_test.T)], y_brain_test)}
brain_models = {"triplanar": arch.triplanar_net(S3), "3-D CNN": arch.cnn3d(S3)}
brain_histories, brain_seconds, brain_accuracy = {}, {}, {}
for name, model in brain_models.items():
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(1e-3), metrics=["accuracy"])
    start = time.perf_counter()
    brain_histories[name] = model.fit(brain_inputs["train"][name], brain_inputs["train"]["labels"],
                                      epochs=2 if QUICK else 8, batch_size=32, verbose=0,
                                      validation_data=(brain_inputs["validation"][name],
                                                       brain_inputs["validation"]["labels"]))
    brain_seconds[name] = time.perf_counter() - start
for name, model in brain_models.items():  # the test slab, once
    probability = hp.layers.activations.softmax(model.predict(brain_inputs["test"][name]))[:, 1]
    brain_scores[name] = hp.metrics.roc_auc(probability, y_brain_test)
    brain_accuracy[name] = hp.metrics.accuracy(probability, y_brain_test)
for name, auc in brain_scores.items():
    extra = (f", accuracy {brain_accuracy[name]:.3f}, {brain_models[name].count_params():,} weights, "
             f"{brain_seconds[name]:.0f} s to train") if name in brain_models else ""
    print(f"{name:12s}: test AUC {auc:.3f}{extra}")

# %% tags=["figure"]
zt = 14  # an axial slice of the test slab: every tissue voxel classified by both networks
slice_centres = np.argwhere(tissue_test[zt])
slice_centres = np.column_stack([np.full(len(slice_centres), zt), slice_centres])
fig, axes = plt.subplots(1, 4, figsize=(13, 3.8), layout="constrained")
axes[0].imshow(t1_test[0, zt], cmap="gray", vmin=0, vmax=scan_max, origin="lower")
axes[0].set_title("test scan, axial slice")
truth = np.where(tissue_test[zt], white_test[zt], np.nan)
axes[1].imshow(truth, cmap="viridis", vmin=0, vmax=1, origin="lower")
axes[1].set_title("label: white matter")
for ax, name in zip(axes[2:], brain_models):
    if name == "triplanar":
        x_slice, _ = hp.data.extract_triplanar_patches(t1_test, white_test, slice_centres, S3)
    else:
        x_slice, _ = hp.data.extract_cubes(t1_test, white_test, slice_centres, S3)
    p_map = np.full(tissue_test[zt].shape, np.nan)
    p_map[tuple(slice_centres[:, 1:].T)] = hp.layers.activations.softmax(brain_models[name].predict(x_slice))[:, 1]
    shown = ax.imshow(p_map, cmap="viridis", vmin=0, vmax=1, origin="lower")
    ax.set_title(f"{name}: P(white)")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes, shrink=0.8, label="probability of white matter")
plt.show()

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(7.5, 4))
for name, history in brain_histories.items():
    epochs = np.arange(1, len(history.history["val_accuracy"]) + 1)
    ax.plot(epochs, history.history["val_accuracy"], marker="o", label=f"{name} (validation slab)")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.set_title("grey vs white matter: validation accuracy while training")
ax.legend()
plt.show()

# %%
auc_tri, auc_3d = brain_scores["triplanar"], brain_scores["3-D CNN"]
best_baseline = max(brain_scores["intensity"], brain_scores["3×3×3 mean"])
results.claim("mni_networks_beat_intensity", min(auc_tri, auc_3d) > best_baseline + 0.02,
              "On the test slab of the other scan, both networks beat the voxel's own intensity (AUC "
              "{mni_auc_intensity:.3f}) and its fixed 3×3×3 average ({mni_auc_mean3:.3f}): triplanar "
              "{mni_auc_triplanar:.3f}, 3-D CNN {mni_auc_3d:.3f}. "
              "Filters learned over an 11-voxel neighbourhood tell grey from white where the noisy intensity "
              "cannot.",
              "On the test slab the networks do not clearly beat the voxel's intensity (AUC {mni_auc_intensity:.3f}) "
              "and its 3×3×3 mean ({mni_auc_mean3:.3f}): triplanar {mni_auc_triplanar:.3f}, "
              "3-D CNN {mni_auc_3d:.3f}.",
              mni_auc_intensity=brain_scores["intensity"], mni_auc_mean3=brain_scores["3×3×3 mean"],
              mni_auc_triplanar=auc_tri, mni_auc_3d=auc_3d)
results.claim("mni_3d_no_clear_gain", abs(auc_3d - auc_tri) < 0.02,
              "The 3-D CNN and the triplanar network end within {mni_auc_gap:.3f} AUC of each other, while the 3-D CNN "
              "took {mni_time_ratio:.1f} times as long to train ({mni_seconds_3d:.0f} s vs "
              "{mni_seconds_triplanar:.0f} s): on this anatomy three "
              "planes carry nearly all that the cube does.",
              "The 3-D CNN and the triplanar network differ by {mni_auc_gap:.3f} AUC (3-D {mni_auc_3d:.3f}, "
              "triplanar {mni_auc_triplanar:.3f}); "
              "the 3-D CNN took {mni_time_ratio:.1f} times as long to train ({mni_seconds_3d:.0f} s vs "
              "{mni_seconds_triplanar:.0f} s).",
              mni_auc_gap=abs(auc_3d - auc_tri), mni_auc_3d=auc_3d, mni_auc_triplanar=auc_tri,
              mni_time_ratio=brain_seconds["3-D CNN"] / brain_seconds["triplanar"],
              mni_seconds_3d=brain_seconds["3-D CNN"], mni_seconds_triplanar=brain_seconds["triplanar"]);
results.record(mni_params_triplanar=brain_models["triplanar"].count_params(),
               mni_params_3d=brain_models["3-D CNN"].count_params(),
               mni_accuracy_triplanar=brain_accuracy["triplanar"], mni_accuracy_3d=brain_accuracy["3-D CNN"])

# %% [markdown]
# What limits both networks is where the anatomy is ambiguous: the thin cortical ribbon and the
# deep grey nuclei (thalamus, putamen), whose T1 brightness lies between grey and white matter, and
# the partial-volume voxels on every boundary, whose label is a coin toss of the probability maps.
# The bias field also shifts brightness between the training and the test slab; a network that
# sees only intensities learns what "white" looks like in the lower slices. In practice one would
# correct the bias field first (N4) and normalize each scan's intensities.

# %% [markdown]
# ## 3. Autoencoders for pre-training
#
# An **autoencoder** learns to reproduce its input through a bottleneck: an encoder compresses,
# a decoder reconstructs, and the loss is the squared difference between input and output. It
# needs no labels. `arch.conv_autoencoder(in_channels=1, filters=(16, 8))` on the 8×8 digits halves
# the image twice: each digit becomes a code of 8 channels of 2×2, 32 numbers for 64 pixels.

# %% [markdown]
# The slide says unsupervised (and semi-supervised) learning use generative models. Precisely, many
# do, but not all: the autoencoder here is unsupervised (it needs no labels) without being a
# generative model — it cannot draw new samples, it only compresses and reconstructs its inputs.
# Variational autoencoders and GANs (section 4) are generative.

# %%
(x_fit, y_fit), (x_digits_test, y_digits_test) = hp.data.load_digits(flatten=False)
shuffle = np.random.default_rng(0).permutation(len(x_fit))
n_val = len(x_fit) // 5
x_digits_val, y_digits_val = x_fit[shuffle[:n_val]], y_fit[shuffle[:n_val]]
x_digits, y_digits = x_fit[shuffle[n_val:]], y_fit[shuffle[n_val:]]
autoencoder, encoder = arch.conv_autoencoder(in_channels=1, filters=(16, 8), seed=0)
autoencoder.compile(loss="mse", optimizer=hp.optimizers.Adam(2e-3))
ae_history = autoencoder.fit(x_digits, x_digits, epochs=8 if QUICK else 30, batch_size=32, verbose=0)
print("reconstruction error (mean squared, pixels in [0, 1]):", round(ae_history.history["loss"][-1], 4))
code = encoder.predict(x_digits_val[:1])
print("code of one digit:", code.shape)

# %% tags=["figure"]
decoded = autoencoder.predict(x_digits_val[:10])
fig, axes = plt.subplots(2, 10, figsize=(11, 2.8))
for k in range(10):
    axes[0, k].imshow(x_digits_val[k, 0], cmap="gray_r", vmin=0, vmax=1)
    axes[1, k].imshow(np.clip(decoded[k, 0], 0, 1), cmap="gray_r", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("input")
axes[1, 0].set_ylabel("decoded")
plt.show()

# %% [markdown]
# The encoder has learned features of digits without a single label. With only **100 labelled
# digits** (10 per class), a classifier on top of the pre-trained encoder (`arch.classifier_from_encoder`:
# frozen first, then fine-tuned with a small learning rate) against the same classifier trained
# from scratch:

# %%
rng = np.random.default_rng(0)
few = np.concatenate([rng.choice(np.flatnonzero(y_digits == k), 10, replace=False) for k in range(10)])
pretrained = encoder.get_weights()


def train_classifier(model, lr, epochs):
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(lr), metrics=["accuracy"])
    model.fit(x_digits[few], y_digits[few], epochs=epochs, batch_size=16, verbose=0)
    return model.evaluate(x_digits_val, y_digits_val)[1]


pretraining = {"pre-trained, frozen": [], "pre-trained, then fine-tuned": [], "from scratch": []}
for seed in [0] if QUICK else [0, 1, 2]:
    encoder.set_weights(pretrained)
    classifier = arch.classifier_from_encoder(encoder, 10, dense_units=32, input_shape=(1, 8, 8), seed=seed)
    pretraining["pre-trained, frozen"].append(train_classifier(classifier, 3e-3, 100))
    encoder.trainable = True
    pretraining["pre-trained, then fine-tuned"].append(train_classifier(classifier, 5e-4, 50))
    _, fresh = arch.conv_autoencoder(in_channels=1, filters=(16, 8), seed=10 + seed)
    scratch = arch.classifier_from_encoder(fresh, 10, dense_units=32, freeze=False, input_shape=(1, 8, 8), seed=seed)
    pretraining["from scratch"].append(train_classifier(scratch, 3e-3, 150))
for name, accuracies in pretraining.items():
    print(f"{name:29s}: validation accuracy {np.mean(accuracies):.3f} (seeds: {np.round(accuracies, 3).tolist()})")

# %%
frozen, tuned, scratch_acc = (float(np.mean(pretraining[k])) for k in pretraining)
results.effect("digit_pretraining", frozen - scratch_acc, 0.02,
              "Here pre-training pays: with the encoder frozen the classifier reaches {frozen:.3f} on the validation "
              "digits against {scratch:.3f} from scratch ({gain:+.1f} points).",
              "Here pre-training hurts: frozen {frozen:.3f} against {scratch:.3f} from scratch.",
              "Here pre-training makes no clear difference: frozen {frozen:.3f} against {scratch:.3f} from scratch.",
              frozen=frozen, scratch=scratch_acc, gain=100 * (frozen - scratch_acc))
results.effect("fine_tuning", tuned - frozen, 0.02,
              "Fine-tuning adds {more:.1f} points more ({tuned:.3f}).",
              "Fine-tuning loses {more:.1f} points here ({tuned:.3f} against {frozen:.3f} frozen).",
              "Fine-tuning adds nothing clear here ({tuned:.3f} against {frozen:.3f} frozen).",
              more=100 * (tuned - frozen), tuned=tuned, frozen=frozen)

# %% [markdown]
# Whether pre-training pays depends on how well the pretext task (here: reconstruct the pixels)
# rewards the features the real task needs, and on how few labels there are; the verdicts above
# are this run's, at 100 labels. (On the retina patches of chapter 4 the reconstruction spends the
# code on brightness, not on vessels.) The last classifier of the loop (pre-trained, then fine-tuned, last seed) on the test
# digits, once:

# %%
results.say("Test accuracy of the pre-trained, fine-tuned classifier: {acc:.3f} on {n} digits it never saw.",
            acc=classifier.evaluate(x_digits_test, y_digits_test)[1], n=len(x_digits_test))

# %% [markdown]
# ## 4. A small GAN
#
# A **generative adversarial network** (Goodfellow et al., 2014) is two networks in a game. The
# **generator** $G$ turns random noise $z$ into an image; the **discriminator** $D$ outputs a logit,
# "real or fake?". Each step trains $D$ to tell real digits from $G$'s fakes, then trains $G$ to
# make $D$ say "real" — through $D$, whose weights are frozen for that step (`D.trainable = False`):
#
# $$\min_G \max_D \; \mathbb{E}_x[\log D(x)] + \mathbb{E}_z[\log(1 - D(G(z)))] .$$
#
# `arch.gan` builds the two for 8×8 digits (a dense layer, upsampling and convolutions for $G$;
# strided convolutions for $D$); `arch.train_gan` alternates the two optimizer steps with nothing
# but `train_on_batch` calls.

# %% [markdown]
# The slide says the generator and the discriminator play a zero-sum game. Precisely, the minimax
# objective above is zero-sum, but with it the generator learns almost nothing at the start, when
# $D$ rejects its fakes easily ($\log(1 - D(G(z)))$ is flat there). Goodfellow et al. therefore
# train $G$ to maximize $\log D(G(z))$ instead, and so does handprop: `arch.train_gan`'s generator
# step trains $G$ through the frozen $D$ towards the label "real" (1), the loss $-\log D(G(z))$.
# With that loss the game is no longer zero-sum.

# %%
generator, discriminator = arch.gan(latent_dim=16, image_shape=(1, 8, 8), seed=0)
steps = 150 if QUICK else 2000
start = time.perf_counter()
gan_losses = arch.train_gan(generator, discriminator, x_digits, steps=steps, batch_size=32, seed=0)
print(f"{steps} steps in {time.perf_counter() - start:.0f} s")
d_loss, g_loss = gan_losses["d_loss"][-100:].mean(), gan_losses["g_loss"][-100:].mean()
results.claim("gan_players_balanced", abs(d_loss - np.log(2)) < 0.15,
              "Over the last 100 steps the discriminator's loss averages {d:.3f} and the generator's {g:.3f}, close "
              "to log 2 = 0.693, a coin toss: neither player wins.",
              "Over the last 100 steps the discriminator's loss averages {d:.3f} and the generator's {g:.3f}, far "
              "from log 2 = 0.693: one player is winning.", d=d_loss, g=g_loss)

# %% tags=["figure", "thumbnail"]
fakes = generator.predict(np.random.default_rng(1).standard_normal((24, 16)))
fig = plt.figure(figsize=(13, 4.2))
left = fig.add_axes([0.05, 0.15, 0.28, 0.66])
window = 25
for name, values in gan_losses.items():
    player = {"d_loss": "discriminator", "g_loss": "generator"}.get(name, name)
    left.plot(np.convolve(values, np.ones(window) / window, mode="valid"), label=player)
left.axhline(np.log(2), color="grey", linestyle=":", linewidth=1.5, label="log 2: neither wins")
left.set_xlabel("step")
left.set_ylabel("loss")
left.set_title("losses (moving average)")
left.legend()
grid = fig.add_gridspec(4, 13, left=0.4, right=0.98, top=0.84)  # 6 columns of fakes, a gap, 6 columns of real digits
for k in range(24):
    for images, column in ((fakes, k % 6), (x_digits, 7 + k % 6)):
        ax = fig.add_subplot(grid[k // 6, column])
        ax.imshow(images[k, 0], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
fig.text(0.40 + 0.58 * 3 / 13, 0.86, "generated by G", ha="center", fontsize=13)
fig.text(0.40 + 0.58 * 10 / 13, 0.86, "real digits", ha="center", fontsize=13)
fig.suptitle(f"A GAN after {steps} steps: its losses, digits it generates, and real ones")
plt.show()

# %% [markdown]
# A discriminator loss near $\log 2$ means that neither player wins: that is the goal, not a
# failure. Look at the middle panel for how digit-like the generator's strokes are after these
# steps; it has never seen a label. GANs are notoriously unstable (a discriminator that
# wins too easily leaves the generator without a gradient; a generator can collapse onto a few
# digits it gets away with); the DCGAN settings used here (Adam with $\beta_1 = 0.5$, LeakyReLU,
# strided convolutions) are the usual first aid.

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop's own implementation and says what differs.
#
# ### Exercise 1 — the size of a 3-D convolution
#
# Write `conv3d_shape_and_params(input_shape, filters, kernel_size, stride=1, padding=0)`: for an
# input of shape `(C, D, H, W)` and a `Conv3D(filters, kernel_size, stride=stride, padding=padding)`
# (the same kernel size, stride and padding along all three axes, with a bias), return
# `(output_shape, n_params)`, where `output_shape` is `(filters, D_out, H_out, W_out)`.

# %% tags=["exercise"]
def conv3d_shape_and_params(input_shape, filters, kernel_size, stride=1, padding=0):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def conv3d_shape_and_params(input_shape, filters, kernel_size, stride=1, padding=0):
    C, *sizes = input_shape
    out = tuple((n + 2 * padding - kernel_size) // stride + 1 for n in sizes)
    return (filters, *out), filters * C * kernel_size**3 + filters


# %% tags=["check"]
hp.exercises.check_conv3d_shape_and_params(conv3d_shape_and_params)

# %% [markdown]
# ### Exercise 2 — triplanar patches
#
# Write `triplanar_patches(volume, centre, size)` for a volume `(C, D, H, W)`, a voxel
# `centre = (z, y, x)` and an odd `size`: return the three `(C, size, size)` patches `(axial,
# coronal, sagittal)` with the voxel in the middle — axial fixes $z$ (rows $y$, columns $x$),
# coronal fixes $y$ (rows $z$, columns $x$), sagittal fixes $x$ (rows $z$, columns $y$) — and zeros
# where a patch sticks out of the volume. The checker compares with
# `hp.data.extract_triplanar_patches`.

# %% tags=["exercise"]
def triplanar_patches(volume, centre, size):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def triplanar_patches(volume, centre, size):
    h = size // 2
    padded = np.pad(volume, ((0, 0), (h, h), (h, h), (h, h)))  # zeros around: every patch fits
    z, y, x = (c + h for c in centre)  # the centre in padded coordinates
    axial = padded[:, z, y - h:y + h + 1, x - h:x + h + 1]
    coronal = padded[:, z - h:z + h + 1, y, x - h:x + h + 1]
    sagittal = padded[:, z - h:z + h + 1, y - h:y + h + 1, x]
    return axial, coronal, sagittal


# %% tags=["check"]
hp.exercises.check_triplanar_patches(triplanar_patches)
