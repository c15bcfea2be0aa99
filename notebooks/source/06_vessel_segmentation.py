# %% [markdown]
# # Chapter 6 — Vessel segmentation end to end
#
# The tutorial's task from start to finish: label every pixel of a retinal photograph as vessel or
# background, and measure how well that worked. Three ways to do it, each built on the last:
#
# 1. a **patch classifier** that decides about the centre pixel of a small patch (5×5 or 11×11);
# 2. the same network made **fully convolutional**, so that it labels every pixel of an image in
#    one pass instead of one pass per pixel;
# 3. a **U-Net**, which sees a whole tile at once and outputs a whole map.
#
# Then the evaluation: metrics **inside the field of view**, ROC curves against a one-line
# baseline (the green channel), the errors drawn on the image, and a prediction on a real fundus
# photograph.
#
# The data are synthetic fundus images at half DRIVE's resolution (292×282 pixels), made by
# `hp.data.synthetic_retina`; `hp.data.load_drive("DRIVE", "training")` loads the real DRIVE data set
# into the same structure if you have it. Everything trains in seconds to minutes on a CPU, which
# is far less than published models get, so compare the methods with each other, not with the
# literature.
#
# > **Quick mode.** `QUICK` (next cell) makes the data and every training run smaller so that the
# > automated tests run this notebook quickly. It is `False` unless the environment sets
# > `HANDPROP_QUICK=1`; quick numbers are worse, and the U-Net barely trains in quick mode.

# %% tags=["setup"]
import os
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp
from handprop import architectures as arch
from handprop import inference, metrics
from handprop import segmentation as seg

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # smaller runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("06_vessel_segmentation")  # the numbers this chapter states (see hp.lesson)
hp.set_num_threads(1)  # small models run fastest on one thread, and a shared server stays responsive
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Data, split by patient, normalized per image
#
# Ten patients (eight in quick mode), split into training, validation and test patients
# (chapter 4 says why by patient). Each image is standardized **on its own**, per colour channel,
# with the mean and standard deviation of its field-of-view pixels (`seg.normalize_images`): that
# removes most of the illumination and contrast differences between photographs, and it uses
# nothing from other patients, so nothing leaks. Outside the FOV, `normalize_images` repeats the
# nearest FOV pixel (`outside="nearest"`, its default), so that a patch near the rim of the FOV sees
# plausible pixels rather than a black wall. The networks' outputs outside the FOV mean nothing:
# every probability map below is set to 0 (background) there, as a real pipeline would do. The
# test patients are used once, in section 5, for the final scores.

# %% [markdown]
# The slide says normalization (for instance whitening) can make training faster, and that training
# and test samples get the same normalization, with the mean and standard deviation of the training
# set. Precisely, **whitening** also decorrelates the channels (PCA or ZCA: the covariance becomes the
# identity); subtracting a mean and dividing by a standard deviation per channel is
# **standardization**, which does not. The training-set rule is for statistics taken across images
# (`hp.data.Standardizer`, chapters 1, 4 and 5: per channel, inside the FOV of the training images).
# This chapter standardizes each image with its own FOV statistics (`seg.normalize_images`): the
# same rule for every image, with no statistics from other patients, so no test information leaks.

# %%
data = hp.data.synthetic_retina(8 if QUICK else 10, size=(292, 282), seed=0)
train_ids, val_ids, test_ids = hp.data.split_patients(data, (0.6, 0.2, 0.2), seed=0)
train, val, test = data[train_ids], data[val_ids], data[test_ids]
x_train, x_val, x_test = (seg.normalize_images(d) for d in (train, val, test))
print("training:", train.ids, "\nvalidation:", val.ids, "\ntest:", test.ids)
print(f"vessel pixels inside the FOV: {train.vessels[train.fov].mean():.1%}")


def inside_fov(probabilities, fov):
    """Probability maps (n, H, W) with everything outside the field of view set to 0 (background)."""
    return np.where(fov, probabilities, 0.0).astype(np.float32)


hp.viz.plot_segmentation(train.images[0], train.vessels[0], fov=train.fov[0], title=f"training patient {train.ids[0]}",
                         figsize=(9, 4.8))

# %% [markdown]
# ## 2. Patch classifiers: 5×5 versus 11×11
#
# A patch classifier labels the centre pixel of a $P \times P$ patch. How large should $P$ be? A
# 5×5 patch sees a thin vessel and its immediate surround; an 11×11 patch also sees the vessel's
# neighbourhood, enough to tell a wide vessel's pale centre (the light reflex) from background,
# at more cost per decision.
#
# `hp.data.PatchSampler` draws fresh patches from the training images every epoch, half centred on
# vessel pixels (`balance=0.5`, so the rare class is not drowned). Both networks have the same
# layers: two 3×3 convolutions, no pooling, and a dense head of 64 units
# (`hp.architectures.patch_cnn`). What changes with the patch is the map the dense layer reads:
# 1×1 for a 5×5 patch, 7×7 for an 11×11 one, so the bigger patch costs many more weights.

# %% [markdown]
# The slide says that using each pixel of a larger patch as an input feature rapidly increases the
# number of weights. Precisely, that is true of a multilayer perceptron: each unit of its first layer
# has one weight per input, $P^2 C$ of them ($5 \cdot 5 \cdot 3 = 75$ for a 5×5 RGB patch,
# $11 \cdot 11 \cdot 3 = 363$ for 11×11, 4.8 times as many). A convolution's weights do not depend
# on the patch size at all ($K C R S$); in a patch CNN only the dense layer after `Flatten` grows,
# with the size of the last feature map, which pooling shrinks.

# %%
sizes = {5: dict(kernel_sizes=(3, 3), pool=1), 11: dict(kernel_sizes=(3, 3), pool=1)}
patch_epochs = 3 if QUICK else 10
patch_models, patch_val_accuracy = {}, {}
for P, options in sizes.items():
    sampler = hp.data.PatchSampler(x_train, train.vessels, train.fov, P, batch_size=64,
                                   patches_per_epoch=2000 if QUICK else 4000, balance=0.5, seed=0)
    x_val_p, y_val_p = hp.data.extract_patches(x_val, val.vessels, val.fov, P, 1000, balance=0.5, seed=1)
    model = arch.patch_cnn(P, filters=(16, 32), dense_units=64, **options)
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(1e-3), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(sampler, epochs=patch_epochs, validation_data=(x_val_p, y_val_p), verbose=0)
    patch_models[P] = model
    patch_val_accuracy[P] = history.history["val_accuracy"][-1]
    print(f"{P}x{P} patches: {model.count_params():,} weights, {time.perf_counter() - start:.0f} s, "
          f"validation accuracy on balanced patches {patch_val_accuracy[P]:.3f}")

# %%
weights = {P: model.count_params() for P, model in patch_models.items()}
results.claim("bigger_patch_needs_more_weights", weights[11] > 5 * weights[5],
              "The same layers on an 11×11 patch need {w11:,} weights, {ratio:.0f} times the {w5:,} of the 5×5 "
              "network: almost all of them in the dense layer that reads the larger map.",
              "The 11×11 network has {w11:,} weights, the 5×5 one {w5:,}: not the growth a bigger patch usually costs.",
              w11=weights[11], w5=weights[5], ratio=weights[11] / weights[5])

# %% tags=["figure"]
raw_show, y_show = hp.data.extract_patches(val.images, val.vessels, val.fov, 11, 8, balance=0.5, seed=3)
hp.viz.plot_patches(raw_show, y_show, n=16, box=5, channel=1,
                    title="11×11 validation patches (the photograph's green channel); a 5×5 classifier sees the box")

# %% [markdown]
# ## 3. From a patch classifier to a fully convolutional network
#
# To label a whole image, the patch classifier could run once per pixel: cut the patch around every
# pixel and classify it (`inference.sliding_window_predict`). Neighbouring patches overlap almost
# entirely, so nearly all of that work is repeated. A **fully convolutional network** does it once:
#
# * the convolutions already slide over any image;
# * the `Dense` layer that reads the flattened $(C, h, w)$ map *is* a convolution with an
#   $h \times w$ kernel: $K[k, c, i, j] = W[(c\,h + i)\,w + j,\; k]$ (exercise 2), and the dense
#   layers after it are 1×1 convolutions;
# * in a network that pools (chapter 5's 29×29 network; ours do not), a pooling with stride 2
#   would make the output skip every other pixel; instead the stride is set to 1 and every later
#   window is **dilated** by 2 (by 4 after a second pooling), so it still reads the pixels it read
#   in the patch.
#
# `inference.to_fully_convolutional` does this conversion; `inference.predict_dense` pads the image
# by $P // 2$ and returns one output per pixel. Same answer, one pass:

# %%
fcns = {P: inference.to_fully_convolutional(model) for P, model in patch_models.items()}
for layer in fcns[11].layers:
    if hasattr(layer, "kernel_size") or hasattr(layer, "pool_size"):
        size = getattr(layer, "kernel_size", None) or layer.pool_size
        print(f"  {type(layer).__name__:10s} {str(size):9s} dilation {layer.dilation}")

region = x_val[:1] if not QUICK else x_val[:1, :, 100:196, 100:196]  # quick mode: a 96x96 crop
speedup, difference = {}, {}
for P in sizes:
    inference.sliding_window_predict(patch_models[P], region[:, :, :16, :16])  # warm-up: compile, allocate
    inference.predict_dense(fcns[P], region[:, :, :16, :16], P)
    start = time.perf_counter()
    slow = inference.sliding_window_predict(patch_models[P], region, batch_size=2048)
    t_slow = time.perf_counter() - start
    start = time.perf_counter()
    fast = inference.predict_dense(fcns[P], region, P)
    t_fast = time.perf_counter() - start
    speedup[P], difference[P] = t_slow / t_fast, float(np.abs(slow - fast).max())
    print(f"{P}x{P}: {region.shape[2]}x{region.shape[3]} pixels, sliding window {t_slow:.2f} s, fully convolutional "
          f"{t_fast:.2f} s ({speedup[P]:.1f}x faster), max |difference| {difference[P]:.1e}")

# %%
results.claim("fully_convolutional_is_exact", max(difference.values()) < 1e-4,
              "The outputs are equal to float32 rounding (largest difference {diff:.1e}), and one pass is {s5:.1f}x "
              "(5×5) and {s11:.1f}x (11×11) faster here than the sliding window, which repeats every convolution "
              "for each of the $P^2$ patches a pixel falls into. (Timings depend on the machine and its load.)",
              "The outputs differ by up to {diff:.1e}: more than float32 rounding (speed-ups {s5:.1f}x and "
              "{s11:.1f}x).", diff=max(difference.values()), s5=speedup[5], s11=speedup[11])

# %% [markdown]
# The vessel probability of every pixel of a validation image, from both classifiers (the softmax
# of the two outputs, class 1; 0 outside the FOV):

# %% tags=["figure"]
def raw_patch_probabilities(P, x):
    """The P x P classifier's vessel probability of every pixel, outside the FOV included."""
    return hp.layers.activations.softmax(inference.predict_dense(fcns[P], x, P), axis=1)[:, 1]


def patch_probabilities(P, x, fov):
    return inside_fov(raw_patch_probabilities(P, x), fov)


validation_probabilities = {f"{P}×{P} patches": patch_probabilities(P, x_val, val.fov) for P in sizes}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), layout="constrained")
axes[0].imshow(val.vessels[0], cmap="gray")
axes[0].set_title(f"ground truth ({val.ids[0]})")
for ax, (name, p) in zip(axes[1:], validation_probabilities.items()):
    shown = ax.imshow(p[0], cmap="magma", vmin=0, vmax=1)
    ax.set_title(name)
fig.colorbar(shown, ax=axes[1:], shrink=0.85, label="vessel probability")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# ## 4. U-Net
#
# A U-Net (Ronneberger et al., 2015) maps a whole image to a whole map. Its **encoder** convolves
# and pools (seeing ever larger context at ever coarser resolution), its **decoder** upsamples back
# to the input size, and **skip connections** hand the encoder's fine maps to the decoder at each
# resolution, so the output is both precise and informed by context. `seg.vessel_unet` has two
# poolings and 16–32–64 channels (8–16–32 in quick mode).
#
# It trains on **tiles**: `hp.data.TileSampler` cuts random tiles with their vessel masks and a
# per-pixel **weight**, the FOV mask, so the loss (binary cross-entropy on logits) ignores the black
# surround (for training, `seg.train_segmenter` also flips and rotates them by multiples of 90°):

# %% tags=["figure"]
tiles = hp.data.TileSampler(x_train, train.vessels, train.fov, 64, batch_size=4, tiles_per_epoch=4, seed=0)
x_tile, y_tile, w_tile = next(iter(tiles))
fig, axes = plt.subplots(3, 4, figsize=(9, 7))
for k in range(4):
    for row, (picture, limits) in enumerate(((x_tile[k, 1], (None, None)), (y_tile[k, 0], (0, 1)),
                                             (w_tile[k, 0], (0, 1)))):
        axes[row, k].imshow(picture, cmap="gray", vmin=limits[0], vmax=limits[1])  # masks: 0 black, 1 white
        axes[row, k].set_xticks([])
        axes[row, k].set_yticks([])
for row, name in enumerate(("tile (green)", "vessels (y)", "weight (FOV)")):
    axes[row, 0].set_ylabel(name)
fig.suptitle("One batch of a TileSampler: x, y, weight (white = 1, black = 0)")
plt.show()

# %% [markdown]
# `seg.train_segmenter` runs the demo's recipe: tiles from a `TileSampler`, Adam, and after every
# epoch a prediction of the whole validation images, keeping the epoch with the best in-FOV AUC;
# finally it picks the decision threshold with the best validation Dice. The learning rate follows
# a cosine schedule, from `lr` in the first epoch down towards `lr / 20` (the figure's "lr" panel).

# %%
unet = seg.vessel_unet(width=8 if QUICK else 16)
start = time.perf_counter()
unet_history = seg.train_segmenter(unet, x_train, train, x_val, val, epochs=3 if QUICK else 8,
                                   steps=10 if QUICK else 25, tile=48 if QUICK else 64, batch_size=8, lr=5e-3,
                                   verbose=0)
print(f"U-Net: {unet.count_params():,} weights, trained in {time.perf_counter() - start:.0f} s; best epoch "
      f"{unet.best_epoch + 1} (validation AUC {unet.val_auc:.3f}); threshold {unet.threshold:.2f}")
validation_probabilities["U-Net"] = inside_fov(seg.predict_probabilities(unet, x_val), val.fov)
hp.viz.plot_history(unet_history, title="U-Net: training loss; AUC and Dice on the validation patients; "
                                    "learning rate (cosine schedule)")

# %%
val_dice, val_auc = unet_history.history["val_dice"], unet_history.history["val_auc"]
results.say("The validation Dice (at the default threshold 0.5) is {dice0:.2f} after the first epoch and {dice_end:.2f} "
            "after the last; the AUC, which needs no threshold, goes from {auc0:.3f} to {auc_end:.3f}. A network "
            "starts by calling every pixel background, the majority class, and only later do its vessel "
            "probabilities climb above 0.5.", dice0=val_dice[0], dice_end=val_dice[-1], auc0=val_auc[0],
            auc_end=val_auc[-1])
results.claim("unet_best_epoch_is_the_last", unet.best_epoch == len(val_auc) - 1,
              "The best validation AUC came in the last epoch: the U-Net was still improving when training stopped, "
              "it is under-trained.",
              "The best validation AUC came in epoch {best} of {n}: training had levelled off before it stopped.",
              best=unet.best_epoch + 1, n=len(val_auc))

# %% [markdown]
# ## 5. Metrics inside the field of view, and ROC curves
#
# Now, with every model and threshold chosen on the validation patients, the test patients, once.
# A segmentation is scored pixel by pixel against the annotation, **inside the FOV** only: the
# surround is a third of the image and trivially background (our maps are 0 there), so counting it
# would change accuracy and specificity without saying anything about the vessels. With TP, FP,
# TN, FN the counts of true/false positive/negative pixels:
#
# $$\text{sensitivity} = \frac{TP}{TP + FN}, \quad \text{specificity} = \frac{TN}{TN + FP}, \quad
#   \text{accuracy} = \frac{TP + TN}{\text{all}}, \quad \text{Dice} = \frac{2\,TP}{2\,TP + FP + FN}.$$
#
# All four need a **threshold** on the probability; each model gets the one with the best Dice on
# the *validation* patients (the next cell says whether the patch classifiers, trained on balanced
# patches, need higher ones). The **ROC curve** plots sensitivity against 1 − specificity for every
# threshold, and its area (AUC) is the probability that a random vessel pixel scores above a
# random background pixel: threshold-free. The baseline is the green channel alone, inverted
# (vessels are dark). Two ways to summarize an AUC over several images: the mean of the per-image
# AUCs (`seg.green_channel_auc`, the reports below) or one AUC over all test pixels pooled (the
# ROC figure's legend); each number below says which it is. Where the text names "the model the
# validation patients chose", that is the model with the best mean AUC on the validation patients.

# %%
thresholds = {name: seg.best_dice_threshold(p, val.vessels, val.fov)[0] for name, p in validation_probabilities.items()}
validation_reports = {name: metrics.segmentation_report(p, val.vessels, val.fov, threshold=thresholds[name])
                      for name, p in validation_probabilities.items()}
validation_auc = {name: r["mean"]["auc"] for name, r in validation_reports.items()}
best = max(validation_auc, key=validation_auc.get)  # chosen on the validation patients, never on the test ones
patch_names = {f"{P}×{P} patches": P for P in sizes}
best_patch = max(patch_names, key=validation_auc.get)
print("validation patients, mean in-FOV AUC: " + ", ".join(f"{name} {a:.3f}" for name, a in validation_auc.items())
      + f"\nchosen on validation: {best} (of all models), {best_patch} (of the patch classifiers)\n")
results.say("The patch classifiers learned from balanced patches, half of them vessels, while only {vessel_share:.1%} "
            "of the training images' FOV pixels are vessel: their probabilities run high on real images, so their "
            "best threshold should come out higher than the U-Net's, which learned from real proportions.",
            vessel_share=train.vessels[train.fov].mean())
probabilities = {f"{P}×{P} patches": patch_probabilities(P, x_test, test.fov) for P in sizes}
probabilities["U-Net"] = inside_fov(seg.predict_probabilities(unet, x_test), test.fov)
green_auc, _ = seg.green_channel_auc(test)
green_pooled = metrics.roc_auc(-test.images[:, 1], test.vessels, test.fov)
results.claim("patch_thresholds_above_unet", min(thresholds["5×5 patches"], thresholds["11×11 patches"])
              > thresholds["U-Net"],
              "Best validation thresholds: {t5:.2f} (5×5), {t11:.2f} (11×11), {tu:.2f} (U-Net): the patch "
              "classifiers, trained on balanced patches, need the higher ones.",
              "Best validation thresholds: {t5:.2f} (5×5), {t11:.2f} (11×11), {tu:.2f} (U-Net): here the balanced "
              "training did not push the patch classifiers' thresholds above the U-Net's.",
              t5=thresholds["5×5 patches"], t11=thresholds["11×11 patches"], tu=thresholds["U-Net"])
print(f"green channel alone: in-FOV AUC {green_auc:.3f} (mean over images), {green_pooled:.3f} (pixels pooled)\n")
green_gap = abs(green_auc - green_pooled)
results.say("The green channel's two AUC summaries, {green_mean:.3f} (mean over images) and {green_pool:.3f} (pixels "
            "pooled), differ by {green_gap:.3f}: {gap_words}",
            green_mean=green_auc, green_pool=green_pooled, green_gap=green_gap,
            gap_words="practically the same number." if green_gap < 0.005 else
            "a small difference, but say which one you report." if green_gap < 0.02 else
            "not a detail. Pooling also compares vessel pixels of one image with background pixels of another, "
            "so differences in brightness between photographs enter the pooled AUC of a raw intensity and not "
            "the per-image mean. Always say which summary a number is.")
reports = {}
for name, p in probabilities.items():
    reports[name] = metrics.segmentation_report(p, test.vessels, test.fov, threshold=thresholds[name], ids=test.ids)
    mean = reports[name]["mean"]
    print(f"{name:13s} (threshold {thresholds[name]:.2f}): " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
print()
print(metrics.format_segmentation_report(reports["U-Net"]))

# %% [markdown]
# What counting the surround would do to the numbers, for the same prediction:

# %%
p, t = probabilities[best], thresholds[best]  # the model the validation patients chose
surround = {"accuracy": (metrics.pixel_accuracy(p, test.vessels, test.fov, t),
                         metrics.pixel_accuracy(p, test.vessels, None, t)),
            "specificity": (metrics.specificity(p, test.vessels, test.fov, t),
                            metrics.specificity(p, test.vessels, None, t))}
inflates = all(whole > fov_only for fov_only, whole in surround.values())
results.claim("surround_inflates_accuracy", inflates,
              "For the {best} (the model the validation patients chose), accuracy is {acc_fov:.4f} inside the FOV "
              "and {acc_all:.4f} over the whole image; "
              "specificity {spec_fov:.4f} against {spec_all:.4f}: the trivially right surround inflates both.",
              "For the {best} (the model the validation patients chose), accuracy is {acc_fov:.4f} inside the FOV "
              "and {acc_all:.4f} over the whole image; specificity {spec_fov:.4f} against {spec_all:.4f}: here the "
              "surround does not inflate them (the "
              "map is not 0 everywhere outside the FOV).",
              best=best, acc_fov=surround["accuracy"][0], acc_all=surround["accuracy"][1],
              spec_fov=surround["specificity"][0], spec_all=surround["specificity"][1])

# %%
colors = {"5×5 patches": hp.lesson.model_color("5x5"), "11×11 patches": hp.lesson.model_color("11x11"),
          "U-Net": hp.lesson.model_color("U-Net"), "green channel (inverted)": hp.lesson.model_color("green channel")}
curves = {name: (p, test.vessels, test.fov) for name, p in probabilities.items()}
curves["green channel (inverted)"] = (-test.images[:, 1], test.vessels, test.fov)
fig = hp.viz.plot_roc_curves(curves, title="Test patients, inside the FOV (AUC: pixels pooled)")
for line, name in zip(fig.axes[0].get_lines(), curves):
    line.set_color(colors[name])
fig.axes[0].legend(loc="lower right")
fig

# %%
pooled = {name: metrics.roc_auc(p, test.vessels, test.fov) for name, p in probabilities.items()}
auc = {name: reports[name]["mean"]["auc"] for name in reports}
dice = {name: reports[name]["mean"]["dice"] for name in reports}
results.record(pooled_auc=pooled, green_auc_mean=green_auc, green_auc_pooled=green_pooled)
results.effect("unet_vs_5x5", auc["U-Net"] - auc["5×5 patches"], 0.01,
               "The U-Net beats the 5×5 patch classifier even at this budget: mean AUC {au:.3f} and Dice {du:.2f} "
               "against {a5:.3f} and {d5:.2f} (11×11: {a11:.3f}, {d11:.2f}).",
               "At this size and training budget the small 5×5 patch classifier is hard to beat: mean AUC {a5:.3f} "
               "and Dice {d5:.2f}, against {au:.3f} and {du:.2f} for the U-Net (11×11: {a11:.3f}, {d11:.2f}). "
               "Balanced patches give it a strong learning signal from the first step; the U-Net learns from every "
               "pixel of a tile but mostly from background, so it needs many more steps.",
               "At this size and training budget the three end close: mean AUC {au:.3f} and Dice {du:.2f} for the "
               "U-Net, {a5:.3f} and {d5:.2f} for the 5×5 classifier, {a11:.3f} and {d11:.2f} for the 11×11 one "
               "(differences in AUC under the margin of {margin}). The U-Net learns from every pixel of a tile but "
               "mostly from background, so it needs many steps; balanced patches give the patch classifiers a strong "
               "signal from the first step.",
              a5=auc["5×5 patches"], d5=dice["5×5 patches"], au=auc["U-Net"], du=dice["U-Net"],
              a11=auc["11×11 patches"], d11=dice["11×11 patches"])
results.claim("every_model_beats_the_green_channel", min(pooled.values()) > green_pooled + 0.05,
              "Every model is far above the green-channel baseline: pooled AUC {worst:.3f} for the weakest against "
              "{green:.3f} (the same numbers as the ROC legend).",
              "Not every model clears the green-channel baseline by much: pooled AUC {worst:.3f} for the weakest "
              "against {green:.3f}.", worst=min(pooled.values()), green=green_pooled)

# %% [markdown]
# The U-Net's strengths — context across a whole tile, one pass per image without any conversion —
# show with longer training and larger images (`handprop demo` trains it longer, on whole images).
#
# ## 6. Errors on the image
#
# `hp.viz.plot_segmentation` draws the probability map and the errors inside the FOV: true
# positives white, **false positives orange** (background called vessel), **false negatives blue**
# (missed vessel), outside the FOV grey.

# %% tags=["thumbnail"]
hp.viz.plot_segmentation(test.images[0], test.vessels[0], probabilities[best][0], test.fov[0], threshold=thresholds[best],
                         title=f"{best} (chosen on validation), {test.ids[0]}", figsize=(15, 4.2))

# %% [markdown]
# Typical errors: the thinnest vessels are missed or found only in pieces (blue), vessel borders
# are a pixel too wide or too narrow (thin orange and blue lines along the vessels), and the
# bright optic disc's rim and dark spots get false alarms.
#
# ## 7. A real fundus photograph
#
# `hp.data.load_fundus_photo` returns one real photograph (public domain), 565×565 pixels, without
# an annotation: a qualitative test only. Our networks were trained at half DRIVE's resolution, so
# we halve the photograph too (averaging 2×2 pixels), normalize it like the training images, and
# let the patch classifier the validation patients rank best (by AUC) and the U-Net label it.

# %%
photo = hp.data.load_fundus_photo()
image = photo.images[0, :, :564, :564].reshape(3, 282, 2, 282, 2).mean(axis=(2, 4))  # 2x2 averages
fov = photo.fov[0, :564:2, :564:2]
x_photo = seg.normalize_images(image[None], fov[None])
photo_probabilities = {best_patch: patch_probabilities(patch_names[best_patch], x_photo, fov[None])[0],
                       "U-Net": inside_fov(seg.predict_probabilities(unet, x_photo), fov[None])[0]}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), layout="constrained")
axes[0].imshow(image.transpose(1, 2, 0))
axes[0].set_title("photograph (halved)")
for ax, (name, p) in zip(axes[1:], photo_probabilities.items()):
    shown = ax.imshow(p, cmap="magma", vmin=0, vmax=1)
    ax.set_title(f"{name}: vessel probability")
fig.colorbar(shown, ax=axes[1:], shrink=0.85, label="vessel probability")
fig.suptitle(f"A real photograph, labelled by the {best_patch} (the patch classifier chosen on validation) "
             "and the U-Net")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# Trained only on synthetic retinas, both networks find the main vessel tree of a real eye; look
# at the maps for how many of the small branches each finds. Both raise false alarms where the
# generator does not draw like a real eye (the texture of a real fundus, the macula, the disc's
# rim, the edge of the field of view). Training on real annotated images (DRIVE) is the next step:
# `hp.data.load_drive` loads them into the same structure, and `handprop demo --drive PATH` runs
# this chapter's U-Net pipeline on them.

# %% [markdown]
# ## Hand-made features against learned ones
#
# Before deep learning, vessel segmentation used filters designed by hand. A classic: vessels are
# dark ridges, so across a vessel the brightness curves upwards — a large positive second
# derivative — while along it the brightness hardly changes. The **Hessian** (the matrix of second
# derivatives of the image, smoothed with a Gaussian of width $\sigma$) has one eigenvalue for each
# of these two directions; its larger eigenvalue $\lambda_1$, positive on a dark line, is a
# vessel detector. Taken at several $\sigma$ (scaled by $\sigma^2$ so that scales compare) and
# maximized, it finds thin and wide vessels alike (a simplified Frangi *vesselness*). Nine lines of
# SciPy, no training:

# %%
from scipy import ndimage


def hessian_vesselness(green, sigmas=(1.0, 1.5, 2.0, 3.0)):
    """max over sigma of sigma^2 * (the larger Hessian eigenvalue, where positive): dark ridges of a 2-D image."""
    best = np.zeros(green.shape)
    for s in sigmas:
        h_rr = ndimage.gaussian_filter(green, s, order=(2, 0))
        h_cc = ndimage.gaussian_filter(green, s, order=(0, 2))
        h_rc = ndimage.gaussian_filter(green, s, order=(1, 1))
        larger = (h_rr + h_cc) / 2 + np.sqrt(((h_rr - h_cc) / 2) ** 2 + h_rc**2)
        best = np.maximum(best, s**2 * np.clip(larger, 0, None))
    return best


vesselness = np.stack([hessian_vesselness(g.astype(np.float64)) for g in test.images[:, 1]])
feature_auc = {"green channel (inverted)": metrics.roc_auc(-test.images[:, 1], test.vessels, test.fov),
               "Hessian vesselness (hand-made)": metrics.roc_auc(vesselness, test.vessels, test.fov)}
feature_auc.update({f"{name} (learned)": metrics.roc_auc(p, test.vessels, test.fov)
                    for name, p in probabilities.items()})
for name, auc in feature_auc.items():
    print(f"{name:32s}: in-FOV AUC on the test patients {auc:.3f}")

# %% tags=["figure"]
learned_name = best  # the learned model the validation patients chose (section 5), not the test's best
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
panels = [("green channel", test.images[0, 1], "gray", None),
          ("Hessian vesselness (hand-made)", np.where(test.fov[0], vesselness[0], 0), "magma", None),
          (f"{learned_name}: P(vessel) (learned)", np.where(test.fov[0], probabilities[learned_name][0], 0), "magma",
           (0, 1))]
for ax, (title, picture, cmap, limits) in zip(axes, panels):
    shown = ax.imshow(picture, cmap=cmap, vmin=limits and limits[0], vmax=limits and limits[1])
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if cmap == "magma":
        fig.colorbar(shown, ax=ax, shrink=0.8)
plt.show()

# %% tags=["figure"]
hp.viz.plot_filters(patch_models[5].layers_list()[0].params["W"][:, 1:2],  # (K, C, 3, 3): the green channel's part
                    title="learned first-layer filters of the 5×5 classifier (their green-channel weights)")

# %%
handmade_auc = feature_auc["Hessian vesselness (hand-made)"]
chosen_learned_auc = feature_auc[f"{learned_name} (learned)"]  # the model chosen on validation, scored on test
results.claim("learned_beats_handmade", chosen_learned_auc > handmade_auc,
              "The hand-made vesselness lifts the in-FOV AUC from the green channel's {feature_auc_green:.3f} to "
              "{feature_auc_hessian:.3f}; "
              "the learned model the validation patients chose, the {learned_name}, reaches {feature_auc_learned:.3f}. "
              "The learned filters include edge and ridge detectors "
              "like the Hessian's, but the network also learns how to combine them with colour and context, from "
              "the data instead of from a designer.",
              "The hand-made vesselness (AUC {feature_auc_hessian:.3f}, green channel {feature_auc_green:.3f}) is "
              "not beaten by the learned model the validation patients chose, the {learned_name} "
              "({feature_auc_learned:.3f}).",
              feature_auc_green=feature_auc["green channel (inverted)"], feature_auc_hessian=handmade_auc,
              feature_auc_learned=chosen_learned_auc, learned_name=learned_name);

# %% [markdown]
# ## Post-processing and spatial priors
#
# A network labels each pixel from the pixels around it; it knows nothing about the image as a
# whole. Two pieces of prior knowledge are cheap to add afterwards:
#
# * **where** vessels can be: only inside the field of view (a spatial prior, given by the camera);
# * **what shape** they have: the vessel tree is connected, so a small blob of "vessel" pixels
#   with no contact to anything else is more likely a false alarm (a haemorrhage, noise) than a
#   vessel. Removing connected components smaller than $m$ pixels (`scipy.ndimage.label`, 8-connected)
#   cleans them up; it also removes detached pieces of thin vessels, so $m$ is chosen on the
#   **validation** patients, by Dice, and the test patients are scored once with that choice.
#
# Both applied to every model's thresholded output (the FOV mask scored on the U-Net's; the figure
# after the next cell draws one model, the one whose validation Dice hysteresis raises most):

# %%
def remove_small_components(binary, min_size):
    """binary (N, H, W) -> the same with 8-connected components of fewer than min_size pixels removed."""
    cleaned = np.zeros_like(binary)
    for k, picture in enumerate(binary):
        labels_k, _ = ndimage.label(picture, structure=np.ones((3, 3)))
        sizes = np.bincount(labels_k.ravel())
        keep = sizes >= min_size
        keep[0] = False  # label 0 is the background
        cleaned[k] = keep[labels_k]
    return cleaned


def mean_dice(binary, data, mask):
    return np.mean([metrics.dice(b.astype(float), v, m) for b, v, m in zip(binary, data.vessels, mask)])


min_sizes = [0, 3, 5, 10, 20, 40, 80]
cleanup = {}
for name, p_test in probabilities.items():  # every model, at its validation threshold
    b_val, b_test = validation_probabilities[name] > thresholds[name], p_test > thresholds[name]
    dices = [mean_dice(remove_small_components(b_val, m) if m else b_val, val, val.fov) for m in min_sizes]
    m_best = min_sizes[int(np.argmax(dices))]
    cleaned = remove_small_components(b_test, m_best) if m_best else b_test
    cleanup[name] = {"validation Dice": dices, "m": m_best, "binary": b_test, "cleaned": cleaned,
                     "raw": mean_dice(b_test, test, test.fov), "after": mean_dice(cleaned, test, test.fov)}
    print(f"{name:13s}: m = {m_best:3d} px chosen on validation; test Dice inside the FOV {cleanup[name]['raw']:.4f} "
          f"-> {cleanup[name]['after']:.4f}")
whole = np.ones_like(test.fov)
# The U-Net's own output, before `inside_fov` (which set every map above to 0 outside the FOV):
raw_unet = seg.predict_probabilities(unet, x_test) > thresholds["U-Net"]
unet_binary = remove_small_components(raw_unet, cleanup["U-Net"]["m"]) if cleanup["U-Net"]["m"] else raw_unet
fov_scores = {"before": (mean_dice(unet_binary, test, whole), np.count_nonzero(unet_binary & ~test.fov) / len(test)),
              "after": (mean_dice(unet_binary & test.fov, test, whole), 0.0)}
print(f"U-Net, whole image: {fov_scores['before'][1]:.0f} 'vessel' pixels per image outside the FOV; Dice over the "
      f"whole image {fov_scores['before'][0]:.4f} -> {fov_scores['after'][0]:.4f} after masking with the FOV")

# %% [markdown]
# Removing pixels is one direction; the other is **adding** the ones the threshold missed. Thin
# vessels come out of a network with probabilities just below the threshold, but they are attached
# to the confident part of the tree. **Hysteresis thresholding** keeps every pixel above a low
# threshold that is connected to a pixel above the high one (the validation threshold): a
# connectivity prior that lets the tree grow along its faint branches but does not admit faint
# blobs on their own. The low threshold, as a fraction of the high one, is chosen on validation.

# %%
def hysteresis(p, low, high):
    """Pixels of p (N, H, W) above low that are 8-connected to a pixel above high."""
    out = np.zeros(p.shape, dtype=bool)
    for k, picture in enumerate(p):
        labels_k, _ = ndimage.label(picture > low, structure=np.ones((3, 3)))
        strong = np.unique(labels_k[picture > high])
        out[k] = np.isin(labels_k, strong[strong > 0])
    return out


fractions = [1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.4]
grow = {}
for name, p_test in probabilities.items():
    high = thresholds[name]
    dices = [mean_dice(hysteresis(validation_probabilities[name], f * high, high), val, val.fov) for f in fractions]
    f_best = fractions[int(np.argmax(dices))]
    grown = hysteresis(p_test, f_best * high, high)
    grow[name] = {"validation Dice": dices, "fraction": f_best, "binary": p_test > high, "grown": grown,
                  "raw": cleanup[name]["raw"], "after": mean_dice(grown, test, test.fov)}
    print(f"{name:13s}: low threshold {f_best:.2f} x {high:.2f} chosen on validation; test Dice inside the FOV "
          f"{grow[name]['raw']:.4f} -> {grow[name]['after']:.4f}")

# %% tags=["figure"]
# the model whose VALIDATION Dice hysteresis raises most (fractions[0] = 1.0 is the plain threshold)
shown_name = max(grow, key=lambda name: max(grow[name]["validation Dice"]) - grow[name]["validation Dice"][0])
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), layout="constrained")
for name in cleanup:
    axes[0].plot(min_sizes, cleanup[name]["validation Dice"], "o-", label=name, color=colors[name])
    axes[1].plot(fractions, grow[name]["validation Dice"], "o-", label=name, color=colors[name])
axes[0].set_xlabel("smallest component kept (pixels)")
axes[0].set_ylabel("Dice, validation patients")
axes[0].set_title("removing small components")
axes[1].set_xlabel("low threshold / high threshold")
axes[1].set_title("hysteresis thresholding")
axes[1].invert_xaxis()
axes[0].legend()
added = grow[shown_name]["grown"][0] & ~grow[shown_name]["binary"][0]
# the same model's own output outside the FOV, before `inside_fov` set it to 0 there
shown_raw = (seg.predict_probabilities(unet, x_test[:1]) if shown_name == "U-Net"
             else raw_patch_probabilities(patch_names[shown_name], x_test[:1]))[0]
outside = (shown_raw > thresholds[shown_name]) & ~test.fov[0]
overlay = np.zeros((*test.fov[0].shape, 3))
overlay[grow[shown_name]["binary"][0]] = (1, 1, 1)
overlay[added] = (0.2, 1, 0.2)
overlay[outside] = (0.3, 0.6, 1)
axes[2].imshow(overlay)
added_words = (f"{np.count_nonzero(added)} px added by hysteresis (green)" if added.any()
               else f"hysteresis adds nothing (low = {grow[shown_name]['fraction']:.2f} x high)")
outside_words = (f"{np.count_nonzero(outside)} px outside the FOV\nbefore masking (blue)" if outside.any()
                 else "nothing outside the FOV")
axes[2].set_title(f"{shown_name}: thresholded (white),\n{added_words};\n{outside_words}")
axes[3].imshow(test.vessels[0], cmap="gray")
axes[3].set_title(f"annotation, {test.ids[0]}")
for ax in axes[2:]:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %%
gains = {name: c["after"] - c["raw"] for name, c in cleanup.items()}
helped = [name for name, gain in gains.items() if gain > 0.01]
cleanup_details = "; ".join(f"{name}: m = {c['m']} px, {c['raw']:.3f} -> {c['after']:.3f}"
                            for name, c in cleanup.items())
results.claim("component_cleanup_helps_some_model", bool(helped),
              "Removing small components helps where the output is speckled: {post_helped} gain(s) more than 0.01 "
              "Dice on the test patients ({post_cleanup_details}).",
              "Removing small components does not raise any model's test Dice by more than 0.01 "
              "({post_cleanup_details}). At thresholds already chosen for the best Dice, the isolated pieces are "
              "as often fragments of thin vessels as false alarms, and the false alarms that remain (around "
              "lesions, outside the FOV) are large or attached to the tree.",
              post_helped=", ".join(helped) or "none", post_cleanup_details=cleanup_details)
results.record(post_cleanup_gain={name: gain for name, gain in gains.items()},
               post_cleanup_min_size={name: c["m"] for name, c in cleanup.items()})
grow_gains = {name: g["after"] - g["raw"] for name, g in grow.items()}
grown_helped = [name for name, gain in grow_gains.items() if gain > 0.01]
results.claim("hysteresis_helps_some_model", bool(grown_helped),
              "Hysteresis thresholding raises the test Dice of {post_grown_helped} by more than 0.01 "
              "({post_grow_details}).",
              "Hysteresis thresholding does not raise any model's test Dice by more than 0.01 ({post_grow_details}).",
              post_grown_helped=", ".join(grown_helped) or "none",
              post_grow_details="; ".join(f"{name}: low = {g['fraction']:.2f} x high, {g['raw']:.3f} -> "
                                          f"{g['after']:.3f}" for name, g in grow.items()))
results.record(post_grow_gain=grow_gains, post_grow_fraction={name: g["fraction"] for name, g in grow.items()})
results.claim("fov_mask_removes_outside_false_alarms", fov_scores["after"][0] > fov_scores["before"][0],
              "Masking with the FOV (what `inside_fov` did to every map above) leaves the in-FOV scores as they "
              "were and removes the U-Net's "
              "{post_outside_pixels:.0f} "
              "false 'vessel' pixels per image outside it: Dice over the whole image {post_whole_dice_before:.3f} -> "
              "{post_whole_dice_after:.3f}.",
              "Masking with the FOV does not raise the U-Net's whole-image Dice here ({post_whole_dice_before:.3f} -> "
              "{post_whole_dice_after:.3f}; {post_outside_pixels:.0f} pixels per image outside the FOV).",
              post_outside_pixels=fov_scores["before"][1], post_whole_dice_before=fov_scores["before"][0],
              post_whole_dice_after=fov_scores["after"][0]);

# %% [markdown]
# Post-processing fixes only what the prior knows: a false alarm that touches the vessel tree
# stays, and so does a missed thin vessel. Stronger priors go into the network itself: the
# position of a pixel given as an extra input (useful where anatomy is organized — in brain MRI a
# structure is always in roughly the same place — and useless where the target can be anywhere),
# or a loss that rewards connected, thin structures.

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop's own implementation and says what differs.
#
# ### Exercise 1 — metrics inside the FOV
#
# Write `segmentation_scores(prediction, vessels, fov)` for a binary prediction, a binary ground
# truth and a FOV mask, all (H, W). Return `{"dice": ..., "sensitivity": ..., "specificity": ...,
# "accuracy": ...}` computed from the pixels **inside the FOV** only (section 5). The checker
# compares with `hp.metrics` (`mask=fov`).

# %% tags=["exercise"]
def segmentation_scores(prediction, vessels, fov):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def segmentation_scores(prediction, vessels, fov):
    p, v, inside = prediction.astype(bool), vessels.astype(bool), fov.astype(bool)
    tp, fp = np.sum(p & v & inside), np.sum(p & ~v & inside)
    fn, tn = np.sum(~p & v & inside), np.sum(~p & ~v & inside)
    return {"dice": 2 * tp / (2 * tp + fp + fn), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp), "accuracy": (tp + tn) / inside.sum()}


# %% tags=["check"]
hp.exercises.check_segmentation_scores(segmentation_scores)

# %% [markdown]
# ### Exercise 2 — a dense layer as a convolution
#
# A patch classifier flattens a $(C, h, w)$ feature map and feeds it to `Dense(units)` with weights
# `W` of shape $(C h w, \text{units})$. Write `dense_to_conv(W, feature_shape)` returning the kernel
# (units, C, h, w) of the `Conv2D` that computes the same numbers on the unflattened map (section
# 3). `Flatten` orders the features in NumPy's C order over $(C, h, w)$. The checker runs your kernel
# in a `Conv2D` and compares with the `Dense` layer.

# %% tags=["exercise"]
def dense_to_conv(W, feature_shape):
    C, h, w = feature_shape
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def dense_to_conv(W, feature_shape):
    C, h, w = feature_shape
    units = W.shape[1]
    return W.T.reshape(units, C, h, w)  # row (c h + i) w + j of W is kernel[:, c, i, j]


# %% tags=["check"]
hp.exercises.check_dense_to_conv(dense_to_conv)
