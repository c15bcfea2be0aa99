# %% [markdown]
# # Chapter 4 — Generalization
#
# A network with enough weights can memorize its training set. What we want is a network that is
# right on **new patients**. This chapter measures, on the retina patches of chapter 1, what each of
# the usual tools does to the accuracy on patients the network has never seen:
#
# 1. **splitting by patient** into training, validation and test sets;
# 2. **overfitting** and **early stopping**;
# 3. **ensembles**;
# 4. **dropout**;
# 5. **weight decay** (L2) and L1 penalties;
# 6. **initialization**: Glorot versus too small or too large weights;
# 7. **batch normalization**;
# 8. **data augmentation**;
# 9. **pre-training** an autoencoder and **fine-tuning** it;
#
# then a summary, the test patients once (section 11), and three postscripts: **transfer** from
# another hospital's data, **fewer parameters** with separable convolutions, and two habits
# (overfit one batch first; never tune on the test set).
#
# The setting is deliberately small — a few hundred training patches, so that overfitting shows —
# and every number below is measured, not quoted. Small experiments are noisy: where it matters we
# repeat a run with several seeds (different initial weights and batch orders) and report the mean.
# The text says which tools help at this size and which show no clear effect, from the numbers of
# this run. Every technique is compared on the **validation patients**; the
# test patients are used once, at the end, for the recipe the validation patients chose.
#
# > **Quick mode.** `QUICK` (next cell) shortens every run (fewer epochs and seeds) so that the
# > automated tests run this notebook quickly. It is `False` unless the environment sets
# > `HANDPROP_QUICK=1`. The committed notebook shows a full run; quick runs give noisier numbers.

# %% tags=["setup"]
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp
from handprop import architectures as arch

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("04_generalization")  # the numbers this chapter states (see hp.lesson)
hp.set_num_threads(1)  # small models run fastest on one thread, and a shared server stays responsive
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Training, validation and test sets — split by patient
#
# Three sets, three jobs:
#
# * the **training** set sets the weights;
# * the **validation** set chooses everything else: when to stop, which regularization, which
#   architecture. Each choice fits the validation set a little, so it is no longer an unbiased judge;
# * the **test** set is looked at once, at the end, to report how well the final model does.
#
# The unit of the split is the **patient**, not the patch. Patches of one image share its camera,
# illumination, pigmentation and vessel tree; neighbouring patches even share pixels. If some
# patches of an image train the network and others test it, the test partly measures memory.
# `hp.data.split_patients` assigns whole images (or whole groups of images: both eyes of a person,
# several visits) to each part.

# %%
data = hp.data.synthetic_retina(12, size=(256, 256), seed=0)
train_ids, val_ids, test_ids = hp.data.split_patients(data, (0.5, 0.25, 0.25), seed=0)
print("training patients:  ", train_ids, "\nvalidation patients:", val_ids, "\ntest patients:      ", test_ids)

P = 9  # patch size
standardizer = hp.data.Standardizer().fit(data.images[train_ids], data.fov[train_ids])  # training images only


def patches(ids, per_image, seed):
    """Balanced 9x9 patches of the given patients, standardized with the training statistics."""
    x, y = hp.data.extract_patches(data.images[ids], data.vessels[ids], data.fov[ids], P, per_image,
                                   balance=0.5, seed=seed)
    return standardizer.transform(x), y


x_train, y_train = patches(train_ids, 100, seed=0)   # a small training set: 600 patches
x_val, y_val = patches(val_ids, 600, seed=1)
x_test, y_test = patches(test_ids, 600, seed=2)  # used once, in section 11
print("training", x_train.shape, " validation", x_val.shape, " test", x_test.shape)

# %% [markdown]
# What does splitting by patch instead of by patient do? We draw 300 patches from every image of
# the training and validation patients (the test patients stay out of this) and train the same
# network twice on two-thirds of them: once with a **random** split of the patches (every image
# contributes to both sides), once with the **validation patients held out**.

# %%
def make_mlp(seed=0, hidden=256, dropout=0.0, init="glorot_uniform"):
    """Flatten -> [Dense(hidden) -> ReLU (-> Dropout)] x 2 -> Dense(2): about 130,000 weights for 600 patches."""
    layers = [hp.layers.Flatten()]
    for _ in range(2):
        layers += [hp.layers.Dense(hidden, kernel_init=init), hp.layers.ReLU()]
        layers += [hp.layers.Dropout(dropout)] if dropout else []
    return hp.Sequential(layers + [hp.layers.Dense(2)], seed=seed, input_shape=(3, P, P))


def compiled(model, optimizer=None):
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=optimizer or hp.optimizers.Adam(1e-3),
                  metrics=["accuracy"])
    return model


known = np.concatenate([train_ids, val_ids])  # the patients we may look at
x_all, y_all, centres = hp.data.extract_patches(data.images[known], data.vessels[known], data.fov[known], P, 300,
                                                balance=0.5, seed=5, return_centres=True)
x_all = standardizer.transform(x_all)
held_out = np.isin(known[centres[:, 0]], val_ids)
shuffled = np.random.default_rng(0).permutation(len(x_all))
n_fit = int((~held_out).sum())
splits = {"random patches": (shuffled[:n_fit], shuffled[n_fit:]),
          "by patient": (np.flatnonzero(~held_out), np.flatnonzero(held_out))}
leak = {}
for name, (fit_part, judge_part) in splits.items():
    model = compiled(make_mlp())
    model.fit(x_all[fit_part], y_all[fit_part], epochs=10 if QUICK else 30, batch_size=64, verbose=0)
    leak[name] = model.evaluate(x_all[judge_part], y_all[judge_part])[1]
    print(f"{name:15s}: {len(fit_part)} training patches, accuracy on the held-out patches {leak[name]:.3f}")

# %% [markdown]
# A word on noise before the verdicts: one run of these small networks, judged on a few hundred
# patches, moves by a point or so with the seed. Below, a difference counts as an effect only when
# it is larger than a stated margin (2 points for most comparisons); smaller ones are reported as
# "no clear effect at this size".

# %%
MARGIN = 0.02  # the smallest difference in accuracy that this chapter calls an effect
results.effect("leaky_split_flatters", leak["random patches"] - leak["by patient"], MARGIN,
               "The random split looks better, by {points:.1f} points here ({leaky:.3f} against {honest:.3f}): "
               "patches of one image share its illumination and vessel layout, and a random split lets the network "
               "recognize them. A leaky split flatters the model.",
               "The random split looks *worse* here, by {points:.1f} points ({leaky:.3f} against {honest:.3f}).",
               "Here the leak does not show: {leaky:.3f} with the random split against {honest:.3f} by patient "
               "({points:+.1f} points, within the noise). The size of the gap depends on how different the patients "
               "are; a random split can only flatter a model, never judge it more fairly, so the split stays by "
               "patient.",
               points=100 * (leak["random patches"] - leak["by patient"]), leaky=leak["random patches"],
               honest=leak["by patient"])

# %% [markdown]
# From here on, every choice is made, and every technique compared, on the **validation
# patients**; the test patients wait for section 11.
#
# ## 2. Overfitting, and early stopping
#
# The baseline: the 130,000-weight MLP on 600 training patches, Adam, 60 epochs. We record the
# loss on the validation patients after every epoch.

# %%
epochs = 30 if QUICK else 60
seeds = [0] if QUICK else [0, 1, 2]
scores = {}  # technique -> validation accuracies over the seeds
recipes = {}  # technique -> (its first seed's model, how to rebuild it): section 10 tests the chosen one


def val_accuracy(model):
    return model.evaluate(x_val, y_val)[1]


def run(name, make, optimizer=lambda: hp.optimizers.Adam(1e-3), epochs=epochs, callbacks=lambda: None):
    """Train make(seed) for every seed, store the validation accuracies under name; return the first history."""
    scores[name], first = [], None
    for seed in seeds:
        model = compiled(make(seed), optimizer())
        history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
                            verbose=0, callbacks=callbacks())
        scores[name].append(val_accuracy(model))
        first = first or (model, history)
    recipes[name] = first[0]
    print(f"{name}: validation accuracy {np.mean(scores[name]):.3f} (seeds: {np.round(scores[name], 3).tolist()})")
    return first


def mean(name):
    return float(np.mean(scores[name]))


baseline, history = run("baseline", lambda seed: make_mlp(seed))
history_baseline = history
hp.viz.plot_history(history, title="Baseline: the training loss falls to 0, the validation loss turns up")

# %% [markdown]
# The picture of **overfitting**: the training loss keeps falling towards zero while the validation
# loss reaches its minimum after a few epochs and then climbs, as the network starts to memorize
# the 600 patches (it gets *more confident* about its mistakes on other patients: the validation
# accuracy suffers less than the loss).
#
# **Early stopping** watches the validation loss and stops when it has not improved for `patience`
# epochs; with `restore_best_weights=True` it puts back the weights of the best epoch. Its
# hyper-parameters: `patience` trades noise against waiting (the validation curves of a small
# network wobble from epoch to epoch), and `monitor`, *what* to watch. We try both the validation
# loss and the validation accuracy. (Early stopping chooses its epoch on the validation patients
# and is then scored on them too, which flatters it a little.)

# %% [markdown]
# The slide says to stop at the point where the validation loss is minimal. Precisely, that point
# is only known in hindsight: training has to go on past it to see that the loss does not improve
# any more. Early stopping therefore waits `patience` epochs without an improvement (of at least
# `min_delta`), then stops, and — with `restore_best_weights=True` — puts back the weights of the
# best epoch. That is `hp.callbacks.EarlyStopping(monitor="val_loss", patience=..., min_delta=...,
# restore_best_weights=True)`; without `restore_best_weights` the model keeps the weights of the
# last epoch, `patience` epochs past the minimum.

# %%
stops = {}
for monitor in ("val_loss", "val_accuracy"):
    def early_stopping(monitor=monitor):
        return [hp.callbacks.EarlyStopping(monitor=monitor, patience=10, restore_best_weights=True)]

    model, history = run(f"early stopping on {monitor}", lambda seed: make_mlp(seed), callbacks=early_stopping)
    values = history.history[monitor]
    best = int(np.argmin(values) if monitor == "val_loss" else np.argmax(values))
    stops[monitor] = (len(history.epoch), best + 1)
    print(f"   (the first seed stopped after epoch {len(history.epoch)} of {epochs}, kept the weights of epoch "
          f"{best + 1})")

# %%
stopping = max(("val_loss", "val_accuracy"), key=lambda m: mean(f"early stopping on {m}"))
change = mean(f"early stopping on {stopping}") - mean("baseline")
results.effect("early_stopping", change, MARGIN,
               "Early stopping helped here: watching {monitor}, the first seed stopped after epoch {stopped} of "
               "{epochs} and went back to epoch {kept}, and the validation accuracy rose by {points:.1f} points "
               "({es:.3f} against {base:.3f} for the baseline).",
               "**Here early stopping hurt**: watching {monitor}, the first seed stopped after epoch {stopped} of "
               "{epochs} and went back to epoch {kept}, and the validation accuracy fell by {points:.1f} points "
               "({es:.3f} against {base:.3f}).",
               "**Here early stopping made no clear difference**, whichever curve it watched: the better of the two "
               "({monitor}) stopped the first seed after epoch {stopped} of {epochs} and went back to epoch {kept}, "
               "and the validation accuracy changed by {points:+.1f} points ({es:.3f} against {base:.3f} for the "
               "baseline). It still saved {saved} epochs of training.",
               monitor=stopping, saved=epochs - stops[stopping][0], stopped=stops[stopping][0], kept=stops[stopping][1], epochs=epochs,
              points=100 * change, es=mean(f"early stopping on {stopping}"), base=mean("baseline"))

# %% [markdown]
# Why it can go wrong: the baseline's validation curves, epoch by epoch.

# %% tags=["figure"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, key, label in ((axes[0], "val_loss", "validation loss"), (axes[1], "val_accuracy", "validation accuracy")):
    ax.plot(range(1, epochs + 1), history_baseline.history[key], color=hp.lesson.model_color("validation"))
    ax.axvline(stops[key][1], color="grey", linestyle=":", label=f"best epoch ({stops[key][1]})")
    ax.axvline(stops[key][0], color="black", linestyle="--", label=f"stopped ({stops[key][0]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend()
fig.suptitle(f"Baseline, first seed: the curves early stopping listens to ({len(val_ids)} validation patients)")
plt.show()

# %% [markdown]
# Both curves jump from one epoch to the next: 600 training patches and Adam's steps make each
# epoch's weights a noisy draw, and a few validation patients make a noisy judge. The validation
# *loss* reaches its minimum early: it punishes the growing over-confidence of later epochs more
# than the accuracy does. Early stopping is only as good as the curve it listens to: more
# validation patients, a larger patience or a smaller learning rate all make it more reliable.
#
# ## 3. Ensembles
#
# Networks trained from different initial weights make partly different mistakes. Averaging their
# predicted probabilities (an **ensemble**) cancels some of them. It costs one training run per
# member, and the members of a small ensemble still share the biases of their data.

# %% [markdown]
# The slide says that averaging the outputs of the networks leads to a reduced generalization error.
# Precisely, averaging removes part of the members' *disagreement* (the variance of their
# predictions); for a convex loss such as the cross-entropy, the loss of the averaged probabilities
# is at most the members' average loss (Jensen's inequality). It does not promise to beat the
# **best** member, and the gain is small when the members make the same mistakes (same data, same
# recipe). This chapter averages the members' predicted probabilities.

# %%
members = 3 if QUICK else 5
probabilities, member_accuracy = [], []
for seed in range(members):
    model = compiled(make_mlp(seed))
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)  # as the baseline
    probabilities.append(hp.layers.activations.softmax(model.predict(x_val)))
    member_accuracy.append(val_accuracy(model))
ensemble_accuracy = float((np.mean(probabilities, axis=0).argmax(axis=1) == y_val).mean())
scores["ensemble"] = [ensemble_accuracy]
print("members:", np.round(member_accuracy, 3).tolist(), f" mean {np.mean(member_accuracy):.3f}")
print(f"ensemble of {members} (averaged probabilities): {ensemble_accuracy:.3f}")

# %%
gain = ensemble_accuracy - max(member_accuracy)
results.effect("ensemble", gain, MARGIN,
               "The ensemble reaches {ens:.3f}, {gain:.1f} points above its best member ({best:.3f}; average member "
               "{mean:.3f}).",
               "The ensemble reaches {ens:.3f}, below its best member ({best:.3f}, {gain:+.1f} points).",
               "The ensemble reaches {ens:.3f}, against {mean:.3f} for its average member and {best:.3f} for its best "
               "({gain:+.1f} points): no clear gain at this size. Its members were trained on the same 600 patches "
               "with the same recipe and make mostly the same mistakes; ensembles of more different members (other "
               "architectures, other subsets of the data) gain more.",
               ens=ensemble_accuracy, mean=np.mean(member_accuracy), best=max(member_accuracy), gain=100 * gain)

# %% [markdown]
# ## 4. Dropout
#
# **Dropout** (Srivastava et al., 2014) sets each hidden unit to zero with probability `rate` at
# every training step, a different random subset each time, so no unit can rely on a particular
# partner: it trains an ensemble of thinned networks that share their weights. handprop's `Dropout`
# is *inverted*: the kept units are divided by $1 - \text{rate}$ during training,
#
# $$y = \frac{m \odot x}{1 - \text{rate}}, \qquad m_i \sim \text{Bernoulli}(1 - \text{rate}),$$
#
# so that nothing changes at inference (`predict` uses every unit, unscaled).

# %% [markdown]
# The slide says to remove each unit with probability $p$ during training and, at test time, to
# multiply all outgoing weights by $p$. Precisely, if $p$ is the probability of **dropping** a unit,
# a unit is kept with probability $1 - p$, so its expected contribution during training is
# $(1 - p)$ times its activation, and the test-time weights must be multiplied by $1 - p$, the
# **keep** probability (Srivastava et al. write $p$ for the keep probability, hence the slip).
# handprop's `Dropout(rate)` takes the drop probability and is *inverted*: it divides the kept units
# by $1 - \text{rate}$ during training and changes nothing at test time, which has the same
# expectation.

# %%
model, history = run("dropout 0.5", lambda seed: make_mlp(seed, dropout=0.5))
results.effect("dropout", mean("dropout 0.5") - mean("baseline"), MARGIN,
               "Dropout 0.5 raises the validation accuracy from {base:.3f} to {drop:.3f} (mean of {n} seeds).",
               "Dropout 0.5 lowers the validation accuracy from {base:.3f} to {drop:.3f} (mean of {n} seeds).",
               "Dropout 0.5 makes no clear difference to the accuracy here: {drop:.3f} against {base:.3f} for the "
               "baseline (mean of {n} seeds).",
               base=mean("baseline"), drop=mean("dropout 0.5"), n=len(seeds))
hp.viz.plot_history(history, title="With dropout 0.5 (first seed)")

# %% [markdown]
# ## 5. Weight decay (L2) and L1
#
# A penalty on the size of the weights is added to the loss. Its gradient is added to the loss's
# gradient at every step, which is how handprop's optimizers implement it
# (`weight_decay=` and `l1=` on any optimizer):
#
# $$L' = L + \frac{\lambda_2}{2}\lVert w\rVert^2 + \lambda_1 \lVert w\rVert_1, \qquad
#   \nabla L' = \nabla L + \lambda_2\, w + \lambda_1 \operatorname{sign}(w).$$
#
# L2 (**weight decay**) shrinks every weight in proportion to its size; L1 pulls every weight
# towards zero by the same amount, so the small ones end up at (or around) zero: a sparse
# network. (With Adam, this coupled L2 is rescaled per weight like the rest of the gradient; AdamW's
# decoupled decay is the variant that avoids this. Both regularize.)

# %% [markdown]
# The slide says to minimize $L = L_0 + \lambda \lVert \mathbf{w} \rVert_2$. Precisely, weight
# decay adds the **squared** norm, $L = L_0 + \frac{\lambda}{2} \lVert \mathbf{w} \rVert_2^2$,
# whose gradient $\lambda \mathbf{w}$ shrinks every weight in proportion to its size (hence
# "decay"). The norm itself, $\lVert \mathbf{w} \rVert_2$, has gradient
# $\lambda\, \mathbf{w} / \lVert \mathbf{w} \rVert_2$: a pull of constant strength, undefined at
# $\mathbf{w} = 0$. handprop's `weight_decay=` (on every optimizer, as PyTorch) adds
# `weight_decay * w` to the gradient: the squared penalty, with $\lambda$ = `weight_decay`.

# %%
l2_model, _ = run("weight decay 1e-2", lambda seed: make_mlp(seed),
                  optimizer=lambda: hp.optimizers.Adam(1e-3, weight_decay=1e-2))
l1_model, _ = run("L1 1e-3", lambda seed: make_mlp(seed), optimizer=lambda: hp.optimizers.Adam(1e-3, l1=1e-3))

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(9, 4.5))
for name, model in (("no penalty", baseline), ("L2 (weight decay 1e-2)", l2_model), ("L1 (1e-3)", l1_model)):
    w = model.layers[1].params["W"].ravel()
    ax.hist(w, bins=np.linspace(-0.25, 0.25, 101), histtype="step", linewidth=1.5,
            label=f"{name}: {np.mean(np.abs(w) < 1e-3):.0%} of |w| < 0.001")
ax.set_xlabel("weights of the first layer")
ax.set_yscale("log")
ax.legend()
ax.set_title("L2 shrinks the weights, L1 sets many of them to ~0")
plt.show()

# %%
for name, key in (("L1", "L1 1e-3"), ("L2", "weight decay 1e-2")):
    better = int(np.sum(np.array(scores[key]) > np.array(scores["baseline"])))
    results.effect(name.lower(), mean(key) - mean("baseline"), MARGIN,
                   "{method} ({key}) helps on the validation patients: {acc:.3f} against {base:.3f}, better than the "
                   "baseline in {better} of {n} seeds.",
                   "{method} ({key}) hurts on the validation patients: {acc:.3f} against {base:.3f} (better in "
                   "{better} of {n} seeds). Its strength is a hyper-parameter to choose on the validation set.",
                   "{method} ({key}) makes no clear difference: {acc:.3f} against {base:.3f} for the baseline (better "
                   "in {better} of {n} seeds). Its strength is a hyper-parameter to choose on the validation set.",
                   method=name, key=key, acc=mean(key), base=mean("baseline"), better=better, n=len(seeds))

# %% [markdown]
# (L1's weights hover *around* zero rather than exactly at it: a plain gradient step overshoots
# zero by up to $\eta\lambda_1$; proximal methods would clip them to exactly 0.)
#
# ## 6. Initialization
#
# Before any training, the initial weights decide how signals flow. In a layer with $n$ inputs of
# variance 1 and weights of variance $s^2$, each output has variance $n s^2$. Across many layers
# that factor compounds: signals vanish when $n s^2 < 1$ and explode when it is above 1 (or, with
# tanh, saturate at ±1, where the derivative is 0). **Glorot** (Xavier) initialization picks
# $s^2 = 2 / (n_\text{in} + n_\text{out})$ to keep the variance roughly constant both forwards and
# backwards; **He** initialization, $2 / n_\text{in}$, does the same for ReLU.
#
# A deeper network shows it: six tanh layers of 64 units, with Glorot weights, with
# $\mathcal{N}(0, 0.01^2)$ (too small) and $\mathcal{N}(0, 1)$ (too large). A custom initializer is
# any function `f(shape, rng, dtype, fans=None)`.

# %% [markdown]
# The slide says Glorot initialization normalizes the weight values by the number of incoming and
# outgoing weights. Precisely, it sets their **variance** to $2 / (n_\text{in} + n_\text{out})$ — a
# scale of about one over the square root of the average fan, not one over the counts: uniform on
# $\pm\sqrt{6 / (n_\text{in} + n_\text{out})}$ (`kernel_init="glorot_uniform"`, handprop's
# default) or normal with that variance (`"glorot_normal"`). For a convolution the fans count the
# kernel's taps too: $n_\text{in} = C R S$, $n_\text{out} = K R S$.

# %%
def normal(std):
    def initializer(shape, rng, dtype=np.float32, fans=None):
        return (std * rng.standard_normal(shape)).astype(dtype)
    initializer.__name__ = f"N(0, {std}²)"
    return initializer


inits = {"Glorot uniform": "glorot_uniform", "N(0, 0.01²)": normal(0.01), "N(0, 1)": normal(1.0)}


def make_deep(seed=0, init="glorot_uniform", batchnorm=False, depth=6, width=64):
    layers = [hp.layers.Flatten()]
    for _ in range(depth):
        layers.append(hp.layers.Dense(width, kernel_init=init, use_bias=not batchnorm))
        layers += [hp.layers.BatchNorm()] if batchnorm else []
        layers.append(hp.layers.Tanh())
    return hp.Sequential(layers + [hp.layers.Dense(2)], seed=seed, input_shape=(3, P, P))


def activation_spread(model, x):
    """Standard deviation of each tanh layer's output for one batch (training mode: batch statistics)."""
    spread, h = [], x
    for layer in model.layers:
        h = layer.forward(h, training=True)
        if isinstance(layer, hp.layers.Tanh):
            spread.append(float(h.std()))
    return spread

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(8, 4))
for name, init in inits.items():
    ax.plot(range(1, 7), activation_spread(make_deep(init=init), x_train[:256]), marker="o", label=name)
ax.set_yscale("log")
ax.set_xlabel("tanh layer")
ax.set_ylabel("std of its outputs")
ax.legend()
ax.set_title("Signals at initialization")
plt.show()

# %% [markdown]
# Too small: the signal shrinks by a factor of ten or more per layer and the last layers output almost
# exactly 0 (and the gradients shrink the same way on the way back). Too large: every tanh is
# saturated at ±1 (std ≈ 1), so its derivative, $1 - \tanh^2$, is ~0. Glorot keeps a usable
# spread. Now train each with SGD (momentum 0.9):

# %%
deep_epochs = 8 if QUICK else 20
deep_curves = {}
for name, init in inits.items():
    model = compiled(make_deep(init=init), hp.optimizers.SGD(0.05, momentum=0.9))
    h = model.fit(x_train, y_train, epochs=deep_epochs, batch_size=32, verbose=0)
    deep_curves[f"loss ({name})"] = h.history["loss"]
    accuracy = scores[f"6 tanh layers, {name}"] = [val_accuracy(model)]
    print(f"{name:15s}: training loss after {deep_epochs} epochs {h.history['loss'][-1]:.3f}, "
          f"validation accuracy {accuracy[0]:.3f}")
hp.viz.plot_history(deep_curves, figsize=(9, 4.5), title="Six tanh layers: training loss for three initializations")

# %% [markdown]
# ## 7. Batch normalization
#
# **Batch normalization** (Ioffe & Szegedy, 2015) re-centres and re-scales every unit over the
# current batch before the activation, then lets the network learn the scale and shift it wants:
#
# $$\hat z = \frac{z - \mu_\text{batch}}{\sqrt{\sigma^2_\text{batch} + \epsilon}}, \qquad y = \gamma\,\hat z + \beta .$$
#
# Whatever the weights do to the scale of the signal, the next layer sees values of spread
# $\gamma$: the bad initializations above should matter much less. At inference it uses running averages
# of $\mu$ and $\sigma^2$ collected during training. (A layer followed by batch norm needs no bias:
# $\beta$ replaces it.)

# %% [markdown]
# The slide says $\hat{x} = (x - \mu_B) / (\sqrt{\sigma_B} + \epsilon)$. Precisely (Ioffe & Szegedy,
# 2015), $\epsilon$ goes **inside** the root and the root is of the **variance**:
# $\hat{x} = (x - \mu_B) / \sqrt{\sigma_B^2 + \epsilon}$, with $\sigma_B^2$ the (biased) variance
# over the batch. The slide's form divides by the root of a standard deviation. handprop's
# `BatchNorm(momentum=0.1, eps=1e-5)` computes the precise form, per feature or per channel; it
# keeps running averages of $\mu$ and of the unbiased variance for inference (as PyTorch), which the
# slide does not mention: at test time there is no batch to take statistics from.

# %%
for name, init in inits.items():
    model = compiled(make_deep(init=init, batchnorm=True), hp.optimizers.SGD(0.05, momentum=0.9))
    h = model.fit(x_train, y_train, epochs=deep_epochs, batch_size=32, verbose=0)
    deep_curves[f"loss ({name} + BN)"] = h.history["loss"]
    accuracy = scores[f"6 tanh layers, {name} + BN"] = [val_accuracy(model)]
    print(f"{name:15s} + batch norm: training loss after {deep_epochs} epochs {h.history['loss'][-1]:.3f}, "
          f"validation accuracy {accuracy[0]:.3f}")
hp.viz.plot_history({k: v for k, v in deep_curves.items() if "+ BN" in k}, figsize=(9, 4.5),
                    title="The same networks with batch normalization")

# %%
plain_acc = {name: scores[f"6 tanh layers, {name}"][0] for name in inits}
bn_acc = {name: scores[f"6 tanh layers, {name} + BN"][0] for name in inits}
bad = [name for name in inits if name != "Glorot uniform"]
results.claim("bad_init_fails_without_batchnorm", plain_acc["Glorot uniform"] - min(plain_acc[n] for n in bad) > 0.1,
              "Without batch norm the initialization decides: Glorot reaches {glorot:.3f}, {worst} only {worst_acc:.3f}.",
              "Without batch norm the initializations end close: Glorot {glorot:.3f}, {worst} {worst_acc:.3f}.",
              glorot=plain_acc["Glorot uniform"], worst=min(bad, key=plain_acc.get),
              worst_acc=min(plain_acc[n] for n in bad))
results.claim("batchnorm_rescues_bad_inits", all(bn_acc[n] > plain_acc[n] + 0.1 for n in bad),
              "Batch normalization rescues both bad starts: {a} {a_plain:.3f} → {a_bn:.3f}, {b} {b_plain:.3f} → "
              "{b_bn:.3f}.",
              "Batch normalization does not rescue both bad starts: {a} {a_plain:.3f} → {a_bn:.3f}, {b} "
              "{b_plain:.3f} → {b_bn:.3f}.",
              a=bad[0], a_plain=plain_acc[bad[0]], a_bn=bn_acc[bad[0]], b=bad[1], b_plain=plain_acc[bad[1]],
              b_bn=bn_acc[bad[1]])
bn_spread = max(bn_acc.values()) - min(bn_acc.values())
results.claim("batchnorm_makes_init_harmless", bn_spread < 0.05,
              "With batch norm the three initializations end within {spread:.1f} points of each other (Glorot: "
              "{glorot_bn:.3f}): here the bad starts became harmless.",
              "Even with batch norm the initializations end {spread:.1f} points apart (Glorot: {glorot_bn:.3f}, worst "
              "{worst:.3f}): batch norm helps, but it does not make a bad start harmless.",
              spread=100 * bn_spread, glorot_bn=bn_acc["Glorot uniform"], worst=min(bn_acc.values()))

# %% [markdown]
# ## 8. Data augmentation
#
# If the test patients will differ from the training ones in brightness, contrast and vessel
# orientation, we can show the network such variations during training: transform each training
# image **and its masks together**, randomly, every time it is used. `hp.data.Augmenter` chains
# transforms (flips, 90° rotations, any rotation and zoom, elastic deformation, intensity), and
# `hp.viz.plot_augmentations` shows what they do. Below: exactly the augmenter the experiment
# trains with — flips, 90° rotations and intensity changes — applied to a training image:

# %%
augmenter = hp.data.Augmenter([hp.data.Flip(), hp.data.Rotate90(),
                               hp.data.Intensity(brightness=0.1, contrast=0.2, gamma=0.3)])
hp.viz.plot_augmentations(data.images[train_ids[0]], data.vessels[train_ids[0]], data.fov[train_ids[0]], augmenter,
                          n=4, title="The training augmenter: flips, 90° rotations, intensity")

# %% [markdown]
# The experiment: train on only **two** patients, with a `PatchSampler` that cuts 600 fresh patches
# from their images every epoch, once as they are and once augmented (flips, 90° rotations and
# intensity changes: cheap, no interpolation). A small convolutional network this time: two 3×3
# convolutions, pooling, a dense layer.

# %%
two = train_ids[:2]
aug_epochs = 8 if QUICK else 15


def make_cnn(seed=0):
    L = hp.layers
    return hp.Sequential([L.Conv2D(16, 3), L.ReLU(), L.Conv2D(32, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                          L.Dense(64), L.ReLU(), L.Dense(2)], seed=seed, input_shape=(3, P, P))


for name, augment in (("2 patients", None), ("2 patients, augmented", augmenter)):
    scores[name] = []
    for seed in seeds[:2]:  # two seeds (one in quick mode)
        sampler = hp.data.PatchSampler(data.images[two], data.vessels[two], data.fov[two], P, batch_size=32,
                                       patches_per_epoch=600, augment=augment, standardizer=standardizer, seed=seed)
        model = compiled(make_cnn(seed))
        model.fit(sampler, epochs=aug_epochs, verbose=0)
        scores[name].append(val_accuracy(model))
    print(f"{name:22s}: validation accuracy {mean(name):.3f} (seeds: {np.round(scores[name], 3).tolist()})")

# %%
results.effect("augmentation", mean("2 patients, augmented") - mean("2 patients"), MARGIN,
               "Augmentation raises the validation accuracy from {plain:.3f} to {aug:.3f} ({gain:+.1f} points): two "
               "patients show the network only two illuminations and contrasts, and the random intensity changes "
               "cover the range of other patients much better. (The standardizer is fitted on all the training "
               "patients; augmentation does its work before it.)",
               "Augmentation lowers the validation accuracy from {plain:.3f} to {aug:.3f} ({gain:+.1f} points).",
               "Augmentation changes the validation accuracy from {plain:.3f} to {aug:.3f} ({gain:+.1f} points, seeds "
               "{seeds_plain} and {seeds_aug}): no clear effect at this size; the two seeds differ more than the "
               "two recipes.", seeds_plain=np.round(scores["2 patients"], 3).tolist(),
               seeds_aug=np.round(scores["2 patients, augmented"], 3).tolist(),
              plain=mean("2 patients"), aug=mean("2 patients, augmented"),
              gain=100 * (mean("2 patients, augmented") - mean("2 patients")))

# %% [markdown]
# ## 9. Pre-training and fine-tuning
#
# Labels are expensive (an expert traces every vessel); unlabeled images are cheap. **Pre-training**
# learns features from unlabeled data first, here with a convolutional **autoencoder** that must
# reproduce its input through a narrow code (the encoder halves the patch twice). Then its encoder
# is reused below a small classifier that is trained on the few labels, with the encoder
# **frozen** (`layer.trainable = False`: gradients flow through, the optimizer leaves its weights
# alone), and finally **fine-tuned** (everything trainable, a small learning rate).
#
# The labelled set: 8 patches per training patient, 48 in all. The unlabeled set: 2,400 patches of
# the same patients. The comparison: the same classifier trained from scratch on the 48 labels.

# %%
S = 12  # the autoencoder halves twice: a size divisible by 4
x_unlabeled, _ = hp.data.extract_patches(data.images[train_ids], data.vessels[train_ids], data.fov[train_ids],
                                         S, 400, balance=0.5, seed=3)
x_few, y_few = hp.data.extract_patches(data.images[train_ids], data.vessels[train_ids], data.fov[train_ids],
                                       S, 8, balance=0.5, seed=4)
x_val12, y_val12 = hp.data.extract_patches(data.images[val_ids], data.vessels[val_ids], data.fov[val_ids],
                                           S, 600, balance=0.5, seed=2)
x_unlabeled, x_few, x_val12 = (standardizer.transform(x) for x in (x_unlabeled, x_few, x_val12))

autoencoder, encoder = arch.conv_autoencoder(in_channels=3, filters=(8, 16), seed=0)
autoencoder.compile(loss="mse", optimizer=hp.optimizers.Adam(2e-3))
ae_history = autoencoder.fit(x_unlabeled, x_unlabeled, epochs=3 if QUICK else 8, batch_size=32, verbose=0)
print("autoencoder reconstruction error per epoch:", np.round(ae_history.history["loss"], 3).tolist())
pretrained = encoder.get_weights()

# %% tags=["figure"]
reconstructed = autoencoder.predict(x_val12[:6])
fig, axes = plt.subplots(2, 6, figsize=(10, 4))
for k in range(6):
    for row, picture in enumerate((x_val12[k], reconstructed[k])):
        g = picture[1]  # the green channel
        axes[row, k].imshow(g, cmap="gray", vmin=x_val12[k, 1].min(), vmax=x_val12[k, 1].max())
        axes[row, k].set_xticks([])
        axes[row, k].set_yticks([])
axes[0, 0].set_ylabel("patch")
axes[1, 0].set_ylabel("decoded")
fig.suptitle("The autoencoder's reconstructions of validation patches (green channel)")
plt.show()

# %%
def classify(model, lr, epochs):
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(lr), metrics=["accuracy"])
    model.fit(x_few, y_few, epochs=epochs, batch_size=16, verbose=0)
    return model.evaluate(x_val12, y_val12)[1]


for name in ("pre-trained, frozen", "pre-trained, fine-tuned", "from scratch"):
    scores[name] = []
for seed in seeds:
    encoder.set_weights(pretrained)  # every seed starts from the same pre-trained encoder
    clf = arch.classifier_from_encoder(encoder, n_classes=2, dense_units=64, input_shape=(3, S, S), seed=seed)
    scores["pre-trained, frozen"].append(classify(clf, 1e-3, 40))
    encoder.trainable = True  # unfreeze: fine-tune everything, gently
    scores["pre-trained, fine-tuned"].append(classify(clf, 3e-4, 20))
    _, fresh = arch.conv_autoencoder(in_channels=3, filters=(8, 16), seed=100 + seed)  # random weights
    scratch = arch.classifier_from_encoder(fresh, n_classes=2, dense_units=64, freeze=False, input_shape=(3, S, S),
                                           seed=seed)
    scores["from scratch"].append(classify(scratch, 1e-3, 60))
for name in ("pre-trained, frozen", "pre-trained, fine-tuned", "from scratch"):
    print(f"{name:24s}: validation accuracy {mean(name):.3f} (seeds: {np.round(scores[name], 3).tolist()})")

# %%
pretrained_best = max(mean("pre-trained, frozen"), mean("pre-trained, fine-tuned"))
results.effect("pretraining", pretrained_best - mean("from scratch"), MARGIN,
               "Pre-training helps here: {best:.3f} (frozen {frozen:.3f}, fine-tuned {tuned:.3f}) against "
               "{scratch:.3f} from scratch.",
               "**At this size pre-training does not help; it hurts**: frozen {frozen:.3f}, fine-tuned {tuned:.3f}, "
               "from scratch {scratch:.3f}.",
               "Pre-training makes no clear difference here: frozen {frozen:.3f}, fine-tuned {tuned:.3f}, from "
               "scratch {scratch:.3f}.",
              best=pretrained_best, frozen=mean("pre-trained, frozen"), tuned=mean("pre-trained, fine-tuned"),
              scratch=mean("from scratch"))

# %% [markdown]
# The reconstructions show why pre-training can fail: an
# autoencoder trained with the squared error spends its code on what dominates the error — the
# overall brightness and the broad shading of the patch — and the encoder's two poolings blur
# away the one-to-two-pixel vessels that the classifier needs. Pre-training pays off when the
# unlabeled data is much larger than the labelled data *and* the pretext task rewards the right
# features (a denoising or a contrastive objective, or supervised pre-training on a related
# labelled task); chapter 7 tries an autoencoder on the digits.
#
# ## 10. Summary
#
# Every validation accuracy of this chapter, on the same validation patients (the mean over seeds
# where there were several; the pre-training rows use 12×12 patches and 48 labels, the augmentation
# rows two training patients, so compare rows within a section):

# %% tags=["figure", "thumbnail"]
names = list(scores)
means = [mean(n) for n in names]
fig, ax = plt.subplots(figsize=(10, 0.42 * len(names) + 1.2))
bars = ax.barh(range(len(names)), means, color=["grey" if n == "baseline" else "tab:blue" for n in names])
ax.axvline(mean("baseline"), color="grey", linestyle=":", linewidth=1)
for k, (n, value) in enumerate(zip(names, means)):
    ax.text(value + 0.003, k, f"{value:.3f}", va="center", fontsize=12)
ax.set_yticks(range(len(names)), names, fontsize=12)
ax.invert_yaxis()
ax.set_xlim(0.45, 1.0)
ax.set_xlabel("accuracy on the validation patients")
ax.set_title("What each technique did here (dotted: the baseline MLP)")
plt.show()

# %% [markdown]
# Read it with the noise in mind: one seed of these small networks moves the accuracy by a point
# or more, so differences of that size mean little. Each verdict above (helps / does not help) is
# stated from this run's numbers and checked by a named test (`tests/test_claims.py`), which fails
# if a rebuild changes its sign.
#
# ## 11. The test patients, once
#
# The validation patients chose: among the MLP recipes trained on the same 600 patches (sections
# 2–5), the one with the best mean validation accuracy. Only now, and only for that one network
# (its first seed), do we look at the test patients:

# %%
mlp_recipes = ["baseline", "early stopping on val_loss", "early stopping on val_accuracy", "dropout 0.5",
               "weight decay 1e-2", "L1 1e-3"]
chosen = max(mlp_recipes, key=mean)
test_accuracy = recipes[chosen].evaluate(x_test, y_test)[1]
results.say("The chosen recipe, **{name}** (validation accuracy {val:.3f}), classifies {acc:.1%} of the balanced "
            "patches of the {n} test patients correctly.", name=chosen, val=mean(chosen), acc=test_accuracy,
            n=len(test_ids))
results.record(validation_accuracy={name: mean(name) for name in scores})

# %% [markdown]
# ## 12. Transfer learning from other data
#
# Three more topics follow the chapter's test (sections 12–14). They compare on the validation
# patients; only section 14 touches the test patients again, on purpose, to show why one must not.
#
# Section 9 pre-trained on the same patients without labels. The other way the tutorial describes
# is **transfer**: train a network on *different* labelled data that is plentiful, then reuse it
# where labels are scarce — either **fine-tune** all its weights on the new data, or keep its
# convolutional layers **frozen** as a feature extractor and train only a new head.
#
# Here the plentiful data comes from another "hospital": six synthetic retinas photographed at
# twice the resolution (512×512 pixels, so every vessel is twice as wide in pixels), standardized
# with their own statistics. The scarce data: only **two** of our training patients, 50 patches
# each. A small CNN, trained on the 100 patches from scratch, against the same CNN pre-trained on
# the other hospital: used as it is, frozen with a new head trained on our patches, or fine-tuned
# (all weights, a small learning rate, 15 epochs). Choices are fixed in advance; the validation
# patients score each (the test patients stay out of this comparison).

# %%
other = hp.data.synthetic_retina(4 if QUICK else 6, size=(512, 512), seed=100)
other_standardizer = hp.data.Standardizer().fit(other.images, other.fov)
x_other, y_other = hp.data.extract_patches(other.images, other.vessels, other.fov, P, 500,
                                           balance=0.5, seed=7)
x_other = other_standardizer.transform(x_other)
x_few, y_few = patches(train_ids[:2], 50, seed=8)
print(f"other hospital: {len(x_other)} patches; ours: {len(x_few)} patches from patients {train_ids[:2].tolist()}")


def val_accuracy(model):
    """Accuracy on the validation patients: comparisons are made there, never on the test patients."""
    return model.evaluate(x_val, y_val)[1]


def small_cnn(seed):
    return hp.Sequential([hp.layers.Conv2D(16, 3, padding="same"), hp.layers.ReLU(),
                          hp.layers.Conv2D(32, 3, padding="same"), hp.layers.ReLU(), hp.layers.MaxPool2D(2),
                          hp.layers.Flatten(), hp.layers.Dense(64), hp.layers.ReLU(), hp.layers.Dense(2)],
                         seed=seed, input_shape=(3, P, P))


transfer = {"from scratch (100 patches)": [], "other hospital only": [], "pre-trained, frozen + new head": [],
            "pre-trained, fine-tuned": []}
few_epochs = 15 if QUICK else 40
for seed in [0] if QUICK else [0, 1, 2]:
    scratch = compiled(small_cnn(seed))
    scratch.fit(x_few, y_few, epochs=few_epochs, batch_size=16, verbose=0)
    transfer["from scratch (100 patches)"].append(val_accuracy(scratch))
    source = compiled(small_cnn(seed))
    source.fit(x_other, y_other, epochs=3 if QUICK else 6, batch_size=32, verbose=0)
    transfer["other hospital only"].append(val_accuracy(source))
    pretrained_weights = source.get_weights()
    frozen = compiled(small_cnn(10 + seed))  # a fresh network: its head is new...
    for layer, trained in zip(frozen.layers_list()[:4], source.layers_list()[:4]):
        layer.params.update({k: v.copy() for k, v in trained.params.items()})  # ...its convolutions transferred
        layer.trainable = False  # and frozen
    frozen.fit(x_few, y_few, epochs=few_epochs, batch_size=16, verbose=0)
    transfer["pre-trained, frozen + new head"].append(val_accuracy(frozen))
    tuned = compiled(small_cnn(seed), hp.optimizers.Adam(1e-4))  # small, few steps: keep what was learned
    tuned.set_weights(pretrained_weights)
    tuned.fit(x_few, y_few, epochs=15, batch_size=16, verbose=0)
    transfer["pre-trained, fine-tuned"].append(val_accuracy(tuned))
for name, accuracies in transfer.items():
    print(f"{name:32s}: validation accuracy {np.mean(accuracies):.3f} (seeds: {np.round(accuracies, 3).tolist()})")

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(8, 3.6))
names_t = list(transfer)
ax.barh(range(len(names_t)), [np.mean(transfer[n]) for n in names_t], color="tab:blue")
for k, n in enumerate(names_t):
    ax.plot(transfer[n], [k] * len(transfer[n]), "k.", markersize=10)
    ax.text(np.mean(transfer[n]) + 0.005, k + 0.3, f"{np.mean(transfer[n]):.3f}")
ax.set_yticks(range(len(names_t)), names_t)
ax.invert_yaxis()
ax.set_xlim(0.5, 1.0)
ax.set_xlabel("accuracy on the validation patients (bars: mean, dots: seeds)")
ax.set_title("100 labelled patches: from scratch or transferred")
plt.show()
scratch_acc, tuned_acc = np.mean(transfer["from scratch (100 patches)"]), np.mean(transfer["pre-trained, fine-tuned"])
source_acc = np.mean(transfer["other hospital only"])
results.claim("transfer_beats_scratch", min(tuned_acc, source_acc) > scratch_acc + 0.01,
              "Trained on the other hospital's data, the network does better on our validation patients than one "
              "trained on our 100 patches: {transfer_source_only:.3f} used as it is, {transfer_finetuned:.3f} "
              "fine-tuned, against {transfer_scratch:.3f} from scratch (frozen features with a new head: "
              "{transfer_frozen:.3f}).",
              "Transfer does not clearly beat training from scratch here: {transfer_source_only:.3f} used as it "
              "is, {transfer_finetuned:.3f} fine-tuned, against {transfer_scratch:.3f} from scratch (frozen features "
              "with a new head: {transfer_frozen:.3f}).",
              transfer_finetuned=tuned_acc, transfer_scratch=scratch_acc, transfer_source_only=source_acc,
              transfer_frozen=np.mean(transfer["pre-trained, frozen + new head"]))
results.claim("finetuning_no_better_than_source", tuned_acc <= source_acc + 0.01,
              "Fine-tuning on our 100 patches does not improve on the other hospital's network used as it is "
              "({transfer_finetuned:.3f} against {transfer_source_only:.3f}): with domains this close, the network "
              "from the large data set is already good, and 100 patches of two patients pull it towards those two "
              "patients as much as they teach it. With a larger gap between the domains, or more labels, "
              "fine-tuning usually pays.",
              "Fine-tuning on our 100 patches improves on the other hospital's network used as it is "
              "({transfer_finetuned:.3f} against {transfer_source_only:.3f}).",
              transfer_finetuned=tuned_acc, transfer_source_only=source_acc);

# %% [markdown]
# ## 13. Reducing the number of parameters
#
# Convolutions already share their weights across positions. Further savings the tutorial lists
# include dilated kernels (chapter 3), shared weights across layers or branches (chapter 7) and
# **separable** kernels. A depthwise-separable convolution splits a $k \times k$ convolution from
# $C$ to $K$ channels ($K C k^2$ weights) into a per-channel $k \times k$ filter (`DepthwiseConv2D`,
# $C k^2$) followed by a 1×1 convolution that mixes the channels ($K C$). The small CNN above,
# both ways, on the 600 training patches:

# %%
def separable_cnn(seed):
    return hp.Sequential([hp.layers.Conv2D(16, 3, padding="same"), hp.layers.ReLU(),
                          hp.layers.DepthwiseConv2D(3, padding="same"), hp.layers.Conv2D(32, 1), hp.layers.ReLU(),
                          hp.layers.MaxPool2D(2), hp.layers.Flatten(), hp.layers.Dense(64), hp.layers.ReLU(),
                          hp.layers.Dense(2)], seed=seed, input_shape=(3, P, P))


reduced = {"plain 3×3": [], "depthwise-separable": []}
reduced_params = {}
for seed in [0] if QUICK else [0, 1, 2]:
    for name, make in (("plain 3×3", small_cnn), ("depthwise-separable", separable_cnn)):
        model = compiled(make(seed))
        model.fit(x_train, y_train, epochs=5 if QUICK else 20, batch_size=32, verbose=0)
        reduced[name].append(val_accuracy(model))
        conv = [layer for layer in model.layers_list()[2:5] if layer.params]
        reduced_params[name] = sum(layer.count_params() for layer in conv)
for name, accuracies in reduced.items():
    print(f"{name:20s}: second layer {reduced_params[name]:,} weights, validation accuracy {np.mean(accuracies):.3f} "
          f"(seeds: {np.round(accuracies, 3).tolist()})")
plain_acc, separable_acc = np.mean(reduced["plain 3×3"]), np.mean(reduced["depthwise-separable"])
spread = max(np.ptp(reduced[name]) for name in reduced)  # how far the seeds of one model spread
results.claim("separable_keeps_most_accuracy", separable_acc >= plain_acc - 0.03,
              "The separable layer has {separable_weights:,} weights instead of {plain_weights:,} "
              "({separable_weights_pct:.0f} %) and keeps most of the accuracy: "
              "{separable_acc:.3f} against {plain_acc:.3f} on the validation patients ({separable_loss_points:.1f} "
              "points; the seeds of one model spread over "
              "{seed_spread_points:.1f}).",
              "The separable layer has {separable_weights:,} weights instead of {plain_weights:,} "
              "({separable_weights_pct:.0f} %) and loses {separable_loss_points:.1f} points of "
              "accuracy: {separable_acc:.3f} against {plain_acc:.3f} on the validation patients (seed spread "
              "{seed_spread_points:.1f} points).",
              separable_weights=reduced_params["depthwise-separable"], plain_weights=reduced_params["plain 3×3"],
              separable_weights_pct=100 * reduced_params["depthwise-separable"] / reduced_params["plain 3×3"],
              separable_acc=separable_acc,
              plain_acc=plain_acc, separable_loss_points=100 * (plain_acc - separable_acc),
              seed_spread_points=100 * spread);

# %% [markdown]
# ## 14. Two habits: overfit one batch first, and never tune on the test set
#
# **Overfit one batch first.** Before a long training run, train the network on a single small
# batch for a few hundred steps. A correct model, loss and optimizer drive the loss on that batch
# to nearly zero: the network has far more weights than the batch has numbers to memorize. If the
# loss does not fall, something is broken (labels shuffled against the inputs, a learning rate far
# off, a layer that does not pass gradients, a loss fed probabilities instead of logits) — and a
# full run would only have hidden it behind a slowly falling curve. Below, the chapter's MLP on 32
# training patches, once as it should be, and once with a learning rate a thousand times too small
# (a slip of the exponent): the same batch, the same steps.

# %%
pick = np.random.default_rng(1).choice(len(x_train), 32, replace=False)  # 32 patches, both classes
batch_x, batch_y = x_train[pick], y_train[pick]
one_batch = {}
for name, lr in (("learning rate 1e-3", 1e-3), ("learning rate 1e-6 (a bug)", 1e-6)):
    model = compiled(make_mlp(seed=0), hp.optimizers.Adam(lr))
    one_batch[name] = [model.train_on_batch(batch_x, batch_y)  # the loss before each step
                       for _ in range(60 if QUICK else 150)]
    print(f"{name:27s}: loss {one_batch[name][0]:.3f} at the first step, {one_batch[name][-1]:.4f} after "
          f"{len(one_batch[name])} steps")

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(8, 4))
for name, losses in one_batch.items():
    ax.semilogy(np.arange(1, len(losses) + 1), losses, label=name)
ax.set_xlabel("step (the same 32 patches every time)")
ax.set_ylabel("training loss on the batch")
ax.set_title("overfit one batch: the loss must go to nearly zero")
ax.legend()
plt.show()
good, bug = one_batch["learning rate 1e-3"], one_batch["learning rate 1e-6 (a bug)"]
results.claim("one_batch_overfits", good[-1] < 0.01 and bug[-1] > 0.5 * bug[0],
              "The working setup drives the loss on the batch from {batch_loss_first:.2f} to {batch_loss_last:.4f} "
              "in {batch_steps} steps; the "
              "one with the bug is still at {batch_loss_bug:.3f} after the same steps. A few seconds, and the bug "
              "shows.",
              "The check does not separate the two here: {batch_loss_last:.4f} against {batch_loss_bug:.3f} after "
              "{batch_steps} steps (from "
              "{batch_loss_first:.2f}).",
              batch_loss_first=good[0], batch_loss_last=good[-1], batch_steps=len(good), batch_loss_bug=bug[-1]);

# %% [markdown]
# **Never tune on the test set.** Every choice made by looking at a set's score — the epoch to stop
# at, the dropout rate, the architecture — fits that set a little. Do it on the test set and the
# reported number is no longer a measurement of new patients but the best of many tries. To see
# the size of the effect, a pure-chance experiment: 20 "configurations" that are all the same
# network with different seeds (so none is truly better), each scored on the validation patients
# and on the test patients. Picking the best by its **test** score reports the luckiest draw; picking
# by **validation** and then reporting its test score once is honest.

# %%
tries = []
for seed in range(6 if QUICK else 20):
    model = compiled(make_mlp(seed=100 + seed, hidden=64))
    model.fit(x_train, y_train, epochs=5 if QUICK else 15, batch_size=32, verbose=0)
    tries.append((model.evaluate(x_val, y_val)[1], model.evaluate(x_test, y_test)[1]))
tries = np.array(tries)
honest = tries[np.argmax(tries[:, 0]), 1]  # chosen on validation, its test score reported once
tuned_on_test = tries[:, 1].max()  # chosen on test: the maximum of the test scores
results.claim("tuning_on_test_flatters", tuned_on_test - tries[:, 1].mean() > 0.005,
              "Chosen on the test patients, the \"best\" of {tries_n} identical networks reports test accuracy "
              "{tries_tuned_on_test:.3f}, {tries_gap_points:.1f} points above their mean ({tries_mean:.3f}): luck, "
              "selected. Chosen on validation, "
              "the same procedure reports {tries_honest:.3f}, an honest draw.",
              "Choosing on the test patients reports {tries_tuned_on_test:.3f}, hardly above the mean of the "
              "{tries_n} networks "
              "({tries_mean:.3f}); chosen on validation: {tries_honest:.3f}.",
              tries_n=len(tries), tries_tuned_on_test=tuned_on_test, tries_honest=honest, tries_mean=tries[:, 1].mean(),
              tries_gap_points=100 * (tuned_on_test - tries[:, 1].mean()));

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop's own implementation and says what differs.
#
# ### Exercise 1 — the gradient of the penalties
#
# Write `regularized_gradient(w, dw, weight_decay, l1)`: the gradient the optimizer should step
# along for the loss $L + \frac{\lambda_2}{2}\lVert w \rVert^2 + \lambda_1 \lVert w \rVert_1$, given
# `dw` $= \partial L / \partial w$ (section 5). Return a new array; at $w = 0$ take the derivative
# of $|w|$ to be 0.

# %% tags=["exercise"]
def regularized_gradient(w, dw, weight_decay, l1):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def regularized_gradient(w, dw, weight_decay, l1):
    return dw + weight_decay * w + l1 * np.sign(w)  # np.sign(0) = 0


# %% tags=["check"]
hp.exercises.check_regularized_gradient(regularized_gradient)

# %% [markdown]
# ### Exercise 2 — early stopping
#
# Write `early_stopping(val_losses, patience, min_delta)`, which replays early stopping on a list
# of validation losses (one per epoch, epochs counted from 0) and returns `(stop_epoch, best_epoch)`:
# the epoch after which training stops (`None` if it never does) and the epoch of the best loss at
# that moment. An epoch **improves** when its loss is below `best - min_delta`; training stops when
# `patience` epochs in a row have not improved. The checker runs `hp.callbacks.EarlyStopping` on
# the same losses.

# %% tags=["exercise"]
def early_stopping(val_losses, patience, min_delta):
    # your answer: return stop_epoch, best_epoch
    raise NotImplementedError


# %% tags=["solution"]
def early_stopping(val_losses, patience, min_delta):
    best, best_epoch, waited = float("inf"), None, 0
    for epoch, loss in enumerate(val_losses):
        if loss < best - min_delta:
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch, best_epoch
    return None, best_epoch


# %% tags=["check"]
hp.exercises.check_early_stopping(early_stopping)

# %% [markdown]
# ### Exercise 3 — inverted dropout
#
# Write `dropout_forward(x, rate, training, rng)`: in training, drop each element with probability
# `rate` (draw the mask from the generator `rng`) and divide the kept ones by `1 - rate`; at
# inference (`training=False`) return `x` as it is. Do not modify `x`.

# %% tags=["exercise"]
def dropout_forward(x, rate, training, rng):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def dropout_forward(x, rate, training, rng):
    if not training:
        return x
    keep = rng.random(x.shape) >= rate  # True with probability 1 - rate
    return x * keep / (1 - rate)


# %% tags=["check"]
hp.exercises.check_dropout(dropout_forward)
