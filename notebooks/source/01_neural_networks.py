# %% [markdown]
# # Chapter 1 — Neural networks
#
# A neural network is a chain of simple functions with adjustable weights. This chapter builds one
# from the bottom up, on the tutorial's task: deciding whether a pixel of a retinal photograph
# belongs to a blood vessel.
#
# 1. a **single unit**: a weighted sum and a nonlinearity (logistic regression, drawn as a line);
# 2. the **activation zoo** and its derivatives: sigmoid, tanh, linear, ReLU, LeakyReLU, ELU, PReLU;
# 3. from units to **layers** to a **multilayer perceptron** (MLP) that classifies retina patches;
# 4. what to minimize: **squared error**, **softmax** and **cross-entropy**, and what to report:
#    **accuracy**;
# 5. **backpropagation by hand** on a tiny network, checked against handprop and against
#    numerical derivatives (`hp.gradcheck`).
#
# > **Quick mode.** `QUICK` (next cell) makes the data sets and training runs smaller so that the
# > automated tests run this notebook quickly. It is `False` unless the environment sets
# > `HANDPROP_QUICK=1`; the pictures tell the same story either way.

# %% tags=["setup"]
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # smaller runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("01_neural_networks")  # the numbers this chapter states (see hp.lesson)
hp.set_num_threads(1)  # small models run fastest on one thread, and a shared server stays responsive
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. A single unit
#
# One artificial neuron (a *unit*) takes inputs $x_1, \dots, x_D$, weighs them, adds a bias and
# passes the sum through an **activation function** $f$:
#
# $$a = f(z), \qquad z = \sum_{i=1}^{D} w_i x_i + b = \mathbf{w}^\top \mathbf{x} + b .$$
#
# With the sigmoid $f(z) = \sigma(z) = 1 / (1 + e^{-z})$ the output lies in $(0, 1)$ and can be read
# as a probability: this unit *is* logistic regression. It says "yes" where $z > 0$, so its
# decision boundary $\mathbf{w}^\top \mathbf{x} + b = 0$ is a straight line (a plane, in more
# dimensions).
#
# Our data: synthetic fundus photographs that imitate the DRIVE data set (`hp.data.synthetic_retina`,
# with an exact vessel mask and the circular field of view, FOV). Vessels absorb green light more
# than red, so a pixel's **red and green values** are two reasonable inputs for a first unit.

# %% [markdown]
# The slide says a unit's output depends on its incoming activations and its weights, and draws
# $a_\text{out} = f(w_0 a_0 + w_1 a_1)$. Precisely, a unit also has a **bias** $b$:
# $a_\text{out} = f(w_0 a_0 + w_1 a_1 + b)$. Without it the boundary $z = 0$ must pass through
# the origin of the input space (a sigmoid unit would answer exactly 0.5 for an all-zero input,
# whatever it learned). handprop's `Dense` and `Conv2D` have a bias unless `use_bias=False`, and the
# unit below learns one.

# %%
n_images = 6 if QUICK else 10
data = hp.data.synthetic_retina(n_images, size=(256, 256), seed=0)
images, vessels, fov, ids = data
print("images", images.shape, "vessels", vessels.shape, "field of view", fov.shape)
print(f"{vessels[fov].mean():.1%} of the pixels inside the FOV are vessel pixels")
hp.viz.plot_segmentation(images[0], vessels[0], fov=fov[0], title=ids[0], figsize=(9, 4.6))

# %% [markdown]
# We draw 1,500 pixels inside the FOV of the first image, half of them vessel pixels, and fit one
# unit to their (red, green) values. `hp.layers.Dense(1)` is the weighted sum $z$;
# `BinaryCrossEntropy(from_logits=True)` applies the sigmoid itself (section 4 says why that is
# better than a `Sigmoid` layer followed by the loss).

# %%
rng = np.random.default_rng(0)
inside = np.argwhere(fov[0])
is_vessel = vessels[0][fov[0]] > 0
pick = np.concatenate([rng.choice(np.flatnonzero(is_vessel), 750, replace=False),
                       rng.choice(np.flatnonzero(~is_vessel), 750, replace=False)])
rows, cols = inside[pick].T
pixels = images[0][:2, rows, cols].T  # (1500, 2): red, green
labels = vessels[0][rows, cols].astype(np.float32)

unit = hp.Sequential([hp.layers.Dense(1)], seed=0, input_shape=(2,))
unit.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.Adam(0.05),
             metrics=["accuracy"])
history = unit.fit(pixels, labels, epochs=30, batch_size=64, verbose=0)
(w_red, w_green), b = unit.layers[0].params["W"][:, 0], unit.layers[0].params["b"][0]
results.say("The unit learned $z$ = {w_red:.2f} red + {w_green:.2f} green + {b:.2f}; it classifies "
            "{acc:.1%} of its 1,500 training pixels correctly.", w_red=w_red, w_green=w_green, b=b,
            acc=history.history['accuracy'][-1])

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(7.6, 5))
ax.scatter(pixels[labels == 0, 0], pixels[labels == 0, 1], s=4, alpha=0.4, label="background")
ax.scatter(pixels[labels == 1, 0], pixels[labels == 1, 1], s=4, alpha=0.4, label="vessel")
red = np.linspace(pixels[:, 0].min(), pixels[:, 0].max(), 2)
ax.plot(red, -(w_red * red + b) / w_green, "k-", label="z = 0 (the unit's boundary)")
ax.set_xlabel("red")
ax.set_ylabel("green")
ax.set_ylim(pixels[:, 1].min(), pixels[:, 1].max())
ax.legend(markerscale=3)
ax.set_title("One unit = one straight boundary")
plt.show()

# %% [markdown]
# The classes overlap: a single pixel's colour says only so much (illumination varies across the
# retina and between patients), and a line cannot bend around the overlap. Two remedies, used in the
# rest of the chapter: give the classifier **more context** (the pixel's neighbourhood, a *patch*)
# and **more units**, stacked in layers with nonlinear activations between them.
#
# ## 2. The activation zoo
#
# Without a nonlinearity, layers stacked on layers collapse into one linear map
# ($W_2 (W_1 x) = (W_2 W_1) x$). The activation function is what lets a network bend its
# boundaries. Backpropagation (section 5) multiplies by its **derivative** $f'(z)$ at every unit, so
# the derivative matters as much as the function:
#
# | activation | $f(z)$ | $f'(z)$ |
# |---|---|---|
# | sigmoid | $1 / (1 + e^{-z})$ | $f(z)\,(1 - f(z))$ ≤ 1/4 |
# | tanh | $\tanh z$ | $1 - f(z)^2$ |
# | linear | $z$ | 1 |
# | ReLU | $\max(0, z)$ | 1 if $z > 0$, else 0 |
# | LeakyReLU | $z$ if $z > 0$, else $\alpha z$ ($\alpha$ = 0.01) | 1 or $\alpha$ |
# | ELU | $z$ if $z > 0$, else $\alpha (e^z - 1)$ | 1, or $f(z) + \alpha$ |
# | PReLU | $z$ if $z > 0$, else $a z$, $a$ **learned** | 1 or $a$; and $\partial f / \partial a = \min(z, 0)$ |
#
# Each activation is a handprop layer with a hand-written `backward`. Feeding it $z$ and then an
# upstream gradient of ones gives $f'(z)$ from the layer's own backward pass:

# %% tags=["figure", "thumbnail"]
z = np.linspace(-4, 4, 401).reshape(-1, 1)
zoo = {"sigmoid": hp.layers.Sigmoid(), "tanh": hp.layers.Tanh(), "linear": hp.layers.Linear(),
       "ReLU": hp.layers.ReLU(), "LeakyReLU (α = 0.1)": hp.layers.LeakyReLU(0.1), "ELU": hp.layers.ELU(),
       "PReLU (a = 0.25)": hp.layers.PReLU()}
fig, axes = plt.subplots(1, len(zoo), figsize=(16, 3.2), sharey=True)
for ax, (name, layer) in zip(axes, zoo.items()):
    f = layer.forward(z)                       # f(z)
    df = layer.backward(np.ones_like(z))       # f'(z), from the layer's backward pass
    ax.plot(z, f, label="f(z)")
    ax.plot(z, df, "--", label="f′(z)")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_title(name)
    ax.set_ylim(-1.6, 2.1)
    ax.set_xlabel("z")
axes[0].legend(loc="upper left")
fig.suptitle("Activation functions and their derivatives", y=1.02)
plt.show()

# %% [markdown]
# Read the dashed lines: the **sigmoid**'s derivative is at most 1/4 and vanishes for large
# $|z|$ (a *saturated* unit barely learns, and ten sigmoid layers multiply ten such factors);
# **tanh** is centred on 0 but saturates too. **ReLU** passes gradients unchanged where it is
# active but is exactly flat for $z < 0$ (a unit that is never active never learns again: a "dead"
# ReLU). **LeakyReLU**, **ELU** and **PReLU** keep a small slope there; PReLU learns that slope, one
# per channel, which is why it has parameters:

# %%
prelu = zoo["PReLU (a = 0.25)"]
print("PReLU parameters:", {k: v.tolist() for k, v in prelu.params.items()})
print(f"gradient of the slope for z = linspace(-4, 4), dy = 1: {float(prelu.grads['alpha'][0]):.2f}"
      f" = sum of min(z, 0) = {np.minimum(z, 0).sum():.2f}")

# %% [markdown]
# ## 3. Layers, and a multilayer perceptron on retina patches
#
# A **dense** (fully connected) layer is many units side by side, each seeing every input. For a
# batch of $N$ inputs as the rows of $X$ ($N \times D$), with one column of weights per unit:
#
# $$Z = X W + \mathbf{b}, \qquad W \in \mathbb{R}^{D \times U},\; \mathbf{b} \in \mathbb{R}^{U},
#   \qquad A = f(Z) \in \mathbb{R}^{N \times U}.$$
#
# A **multilayer perceptron** chains such layers; the last one outputs one score per class.
#
# Instead of one pixel, the network now sees a **patch**: the 9×9 neighbourhood of the pixel, in
# three colours, 243 numbers. `hp.data.extract_patches` cuts patches around FOV pixels (half of them
# centred on vessels: `balance=0.5`) and returns the label of each centre pixel. Two rules keep the
# evaluation honest (chapter 4 measures both): the test patches come from **other patients**
# (`hp.data.split_patients`), and the inputs are standardized with statistics of the **training**
# images only (`hp.data.Standardizer`, inside the FOV). The patients come in three sets: the
# **training** patients set the weights, the **validation** patients are watched during training
# and used for every choice, and the **test** patients are looked at once, at the very end of the
# chapter (arrays that hold them are named `*test*`).

# %%
train_ids, val_ids, test_ids = hp.data.split_patients(data, (0.6, 0.2, 0.2), seed=0)
train, val, test = data[train_ids], data[val_ids], data[test_ids]
print("training patients:  ", train.ids, "\nvalidation patients:", val.ids, "\ntest patients:      ", test.ids)

P = 9
per_image = 400 if QUICK else 1000
standardizer = hp.data.Standardizer().fit(train.images, train.fov)
x_train, y_train = hp.data.extract_patches(train.images, train.vessels, train.fov, P, per_image, balance=0.5, seed=0)
x_val, y_val = hp.data.extract_patches(val.images, val.vessels, val.fov, P, 500, balance=0.5, seed=1)
x_test, y_test = hp.data.extract_patches(test.images, test.vessels, test.fov, P, 500, balance=0.5, seed=2)
x_train, x_val, x_test = (standardizer.transform(x) for x in (x_train, x_val, x_test))
print("patches:", x_train.shape, "labels:", y_train.shape, f"({y_train.mean():.0%} vessel)",
      "validation:", x_val.shape, "test:", x_test.shape)

# %%
hp.viz.plot_patches(x_train, y_train, n=16, seed=0, title="9×9 training patches (standardized), centre pixel marked")

# %% [markdown]
# The MLP: `Flatten` turns each (3, 9, 9) patch into a row of 243 numbers, two hidden layers of 64
# ReLU units follow, and the output layer has one **score** (logit) per class: background, vessel.
# `summary()` counts the weights: a dense layer has $D \cdot U + U$ of them.

# %%
def make_mlp(seed=0, hidden=64):
    return hp.Sequential([hp.layers.Flatten(),
                          hp.layers.Dense(hidden), hp.layers.ReLU(),
                          hp.layers.Dense(hidden), hp.layers.ReLU(),
                          hp.layers.Dense(2)], seed=seed, input_shape=(3, P, P))


mlp = make_mlp()
mlp.summary();
print("first layer by hand:", 243 * 64 + 64, " second:", 64 * 64 + 64, " output:", 64 * 2 + 2)

# %% [markdown]
# ## 4. Outputs and losses: squared error, softmax, cross-entropy, accuracy
#
# Training minimizes a **loss** that compares the network's output with the target. The oldest
# choice is the **squared error** between an output vector $\mathbf{y}$ and a one-hot target
# $\mathbf{t}$ (1 for the true class, 0 elsewhere), averaged over everything:
#
# $$L_\text{MSE} = \frac{1}{N K}\sum_{n=1}^{N}\sum_{k=1}^{K} (y_{nk} - t_{nk})^2 .$$
#
# For classification, the scores $z_k$ are first turned into probabilities by the **softmax**,
#
# $$p_k = \frac{e^{z_k}}{\sum_{j} e^{z_j}} \qquad (\text{positive, summing to 1}),$$
#
# and the **cross-entropy** is the negative log-probability of the true class $c$:
#
# $$L_\text{CE} = -\frac{1}{N}\sum_{n=1}^{N} \log p_{n c_n}, \qquad
#   \frac{\partial L_\text{CE}}{\partial z_{nk}} = \frac{p_{nk} - t_{nk}}{N}.$$
#
# That gradient is remarkably simple: predicted minus wanted. handprop's `SoftmaxCrossEntropy` fuses
# the softmax into the loss (exact even for huge scores; exercise 2 shows why that matters). The
# **accuracy**, the fraction of samples whose largest score is the true class, is what we report,
# but it is a step function of the weights (no useful gradient), so we never train on it.
#
# A worked example with three classes:

# %% [markdown]
# The slide says accuracy, $L_i = \mathbb{I}(t_i = \operatorname{argmax}_j p_{i,j})$, is a loss
# function "used only for evaluation". Precisely, that indicator is 1 for a *correct* answer, so it
# is a score to maximize, not a loss; the matching loss is the 0–1 loss $1 - \mathbb{I}(\cdot)$.
# Either way it is piecewise constant in the weights: its gradient is zero almost everywhere, which
# is why no network is trained on it. In handprop, accuracy is a metric (`metrics=["accuracy"]`,
# `hp.metrics.accuracy`), never one of `hp.losses`.

# %%
scores = np.array([[2.0, 1.0, -1.0]])
p = hp.layers.activations.softmax(scores)
ce = hp.losses.SoftmaxCrossEntropy()
print("scores z       ", scores[0])
print("softmax p      ", p[0].round(4), " sum", p.sum())
print("true class 1:   cross-entropy -log p[1] =", round(float(-np.log(p[0, 1])), 4),
      "=", round(ce.forward(scores, np.array([1])), 4))
print("gradient dL/dz ", ce.backward()[0].round(4), " = p - onehot")

# %% [markdown]
# Why cross-entropy rather than squared error on the probabilities? Look at one sample of a
# two-class problem as a function of the margin $m = z_\text{true} - z_\text{other}$: the
# probability of the true class is $\sigma(m)$. When the network is **confidently wrong**
# ($m \ll 0$), the squared error's gradient fades away — it is multiplied by the saturated
# $\sigma'(m)$ — while the cross-entropy's gradient tends to $-1$: the worse the mistake, the
# harder it pushes.

# %% tags=["figure"]
m = np.linspace(-8, 8, 401)
p_true = 1 / (1 + np.exp(-m))
losses = {"squared error (1 - p)²": ((1 - p_true) ** 2, -2 * (1 - p_true) * p_true * (1 - p_true)),
          "cross-entropy -log p": (-np.log(p_true), -(1 - p_true))}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, (value, grad) in losses.items():
    axes[0].plot(m, value, label=name)
    axes[1].plot(m, grad, label=name)
axes[0].set_ylim(0, 4)
axes[0].set_title("loss")
axes[1].set_title("gradient dL/dm")
for ax in axes:
    ax.set_xlabel("margin m = z_true - z_other")
    ax.axvline(0, color="grey", linewidth=0.5)
axes[1].legend()
plt.show()

# %% [markdown]
# Now both losses on the retina patches: the same MLP, the same initial weights and optimizer
# (plain SGD); once with a `Softmax` layer and `MeanSquaredError` against one-hot targets, once
# with logits and `SoftmaxCrossEntropy`. We follow the loss and the accuracy on the *validation
# patients* (`validation_data`) after every epoch; the test patients wait for the end of the chapter.

# %% tags=["figure"]
epochs = 10 if QUICK else 30
onehot_train, onehot_val = np.eye(2)[y_train], np.eye(2)[y_val]

mse_model = make_mlp()
mse_model.add(hp.layers.Softmax())
mse_model.compile(loss=hp.losses.MeanSquaredError(), optimizer=hp.optimizers.SGD(lr=0.05), metrics=["accuracy"])
mse_history = mse_model.fit(x_train, onehot_train, epochs=epochs, batch_size=32,
                            validation_data=(x_val, onehot_val), verbose=0)

ce_model = make_mlp()
ce_model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.05), metrics=["accuracy"])
ce_history = ce_model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_val, y_val), verbose=0)

for name, h in (("squared error", mse_history), ("cross-entropy", ce_history)):
    print(f"{name:14s} validation accuracy after 1 epoch {h.history['val_accuracy'][0]:.3f}, "
          f"after {epochs}: {h.history['val_accuracy'][-1]:.3f}")

fig, ax = plt.subplots(figsize=(8, 4))
for name, h in (("squared error", mse_history), ("cross-entropy", ce_history)):
    ax.plot(np.arange(1, epochs + 1), h.history["val_accuracy"], marker=".", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy on the validation patients")
ax.legend()
plt.show()

# %%
mse_final, ce_final = mse_history.history["val_accuracy"][-1], ce_history.history["val_accuracy"][-1]
mse_mean, ce_mean = np.mean(mse_history.history["val_accuracy"]), np.mean(ce_history.history["val_accuracy"])
results.effect("cross_entropy_vs_squared_error", ce_final - mse_final, 0.02,
               "Both learn the task, and cross-entropy ends ahead: validation accuracy {ce:.3f} against {mse:.3f} "
               "for the squared error after {epochs} epochs (averaged over all epochs: {ce_mean:.3f} against "
               "{mse_mean:.3f}).",
               "Both learn the task, and here the squared error ends ahead: validation accuracy {mse:.3f} against "
               "{ce:.3f} for cross-entropy after {epochs} epochs (averaged over all epochs: {mse_mean:.3f} against "
               "{ce_mean:.3f}). On an easy, balanced problem with a small network, squared error on softmax outputs "
               "works; it is not the loss to expect trouble from here.",
               "Both learn the task and end level: validation accuracy {ce:.3f} for cross-entropy, {mse:.3f} for the "
               "squared error after {epochs} epochs (averaged over all epochs: {ce_mean:.3f} against {mse_mean:.3f}).",
              ce=ce_final, mse=mse_final, ce_mean=ce_mean, mse_mean=mse_mean, epochs=epochs)

# %% [markdown]
# The confidently-wrong case of the figure above is where squared error really stalls (deep
# sigmoid networks, badly scaled starts). Cross-entropy is the default for classification.
#
# `predict` returns the scores; `predict_classes` the class with the largest one. The softmax
# turns scores into probabilities when we want them:

# %%
scores = ce_model.predict(x_val[:5])
print("scores\n", scores.round(2))
print("probabilities\n", hp.layers.activations.softmax(scores).round(3))
print("predicted classes", ce_model.predict_classes(x_val[:5]), " true", y_val[:5])

# %% [markdown]
# ## 5. Backpropagation by hand
#
# Training needs $\partial L / \partial w$ for every weight. **Backpropagation** is the chain rule
# applied from the loss back to the input, one layer at a time: each layer receives the gradient
# of the loss with respect to its output, $\delta = \partial L/\partial \text{out}$, and returns the
# gradient with respect to its input, computing its own weight gradients on the way.
#
# A tiny network, small enough to write out: 2 inputs, 3 hidden tanh units, 2 output scores,
# cross-entropy:
#
# $$Z_1 = X W_1 + \mathbf{b}_1,\quad H = \tanh Z_1,\quad Z_2 = H W_2 + \mathbf{b}_2,\quad
#   L = \text{CE}(\text{softmax}(Z_2), \mathbf{t}).$$
#
# Backwards, with $\odot$ the elementwise product:
#
# $$\delta_2 = \frac{\partial L}{\partial Z_2} = \frac{P - T}{N},\quad
#   \frac{\partial L}{\partial W_2} = H^\top \delta_2,\quad \frac{\partial L}{\partial \mathbf{b}_2} = \textstyle\sum_n \delta_2,$$
# $$\frac{\partial L}{\partial H} = \delta_2 W_2^\top,\quad
#   \delta_1 = \frac{\partial L}{\partial Z_1} = \frac{\partial L}{\partial H} \odot (1 - H^2),\quad
#   \frac{\partial L}{\partial W_1} = X^\top \delta_1,\quad \frac{\partial L}{\partial \mathbf{b}_1} = \textstyle\sum_n \delta_1 .$$

# %%
rng = np.random.default_rng(1)
X = rng.standard_normal((4, 2))
t = np.array([0, 1, 1, 0])
W1, b1 = rng.standard_normal((2, 3)), np.zeros(3)
W2, b2 = rng.standard_normal((3, 2)), np.zeros(2)

# forward
Z1 = X @ W1 + b1
H = np.tanh(Z1)
Z2 = H @ W2 + b2
P_ = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
P_ /= P_.sum(axis=1, keepdims=True)
loss = -np.log(P_[np.arange(4), t]).mean()

# backward
d2 = (P_ - np.eye(2)[t]) / 4
dW2, db2 = H.T @ d2, d2.sum(axis=0)
dH = d2 @ W2.T
d1 = dH * (1 - H**2)
dW1, db1 = X.T @ d1, d1.sum(axis=0)
print(f"loss {loss:.6f}")
print("dW1 by hand:\n", dW1.round(6))

# %% [markdown]
# The same network in handprop, with the same weights, in float64. `model.backward` runs each
# layer's `backward` in reverse order and leaves the weight gradients in `layer.grads`:

# %%
tiny = hp.Sequential([hp.layers.Dense(3), hp.layers.Tanh(), hp.layers.Dense(2)], seed=0)
tiny.build((2,), dtype=np.float64)
tiny.layers[0].params.update(W=W1.copy(), b=b1.copy())
tiny.layers[2].params.update(W=W2.copy(), b=b2.copy())
tiny.compile(loss=hp.losses.SoftmaxCrossEntropy())

library_loss = tiny.loss.forward(tiny.forward(X), t)
tiny.backward(tiny.loss.backward())
print(f"loss {library_loss:.6f} (by hand {loss:.6f})")
for name, mine, layer, key in (("W1", dW1, 0, "W"), ("b1", db1, 0, "b"), ("W2", dW2, 2, "W"), ("b2", db2, 2, "b")):
    print(f"d{name}: max |by hand - handprop| = {np.abs(mine - tiny.layers[layer].grads[key]).max():.1e}")

# %% [markdown]
# Agreeing with handprop proves little if both are wrong in the same way. The independent judge
# is the definition of a derivative: nudge one weight by $\pm h$ and watch the loss,
#
# $$\frac{\partial L}{\partial w} \approx \frac{L(w + h) - L(w - h)}{2h}, \qquad h = 10^{-5}.$$
#
# `hp.gradcheck.check_model` does that for every weight (and the input) in float64 and reports
# the largest relative error per tensor; a correct backward gives about $10^{-9}$ or less, a wrong
# one $10^{-3}$ or more. `check_layer` does the same for one layer, with a random upstream gradient.

# %%
hp.gradcheck.check_model(tiny, X, t)

# %%
print(hp.gradcheck.check_layer(hp.layers.ELU(), rng.standard_normal((5, 4))))
print(hp.gradcheck.check_layer(hp.layers.PReLU(), rng.standard_normal((5, 3, 4, 4))))

# %% [markdown]
# The checker catches mistakes. A "ReLU" whose backward forgets to zero the gradient where
# the input was negative (it passes `dy` straight through, as if $f' = 1$ everywhere):

# %%
class BrokenReLU(hp.layers.ReLU):
    def backward(self, dy, need_dx=True):
        return dy.copy()  # wrong: should be dy * (x > 0)


print(hp.gradcheck.check_layer(BrokenReLU(), rng.standard_normal((5, 4))))

# %% [markdown]
# ## 6. The test patients, once
#
# One choice of this chapter was made on the validation patients: which of the two losses to keep
# (the learning rate, 0.05, and the 30 epochs were fixed beforehand, not tuned). Only now, with the
# model chosen, do we look at the test patients, once: this is the number to report.

# %%
chosen_loss, chosen_model, chosen_val = (("squared error", mse_model, mse_final) if mse_final > ce_final
                                         else ("cross-entropy", ce_model, ce_final))
test_accuracy = float((chosen_model.predict_classes(x_test) == y_test).mean())
gap = chosen_val - test_accuracy
results.say("The model the validation patients chose (trained with {loss}) classifies {acc:.1%} of the balanced "
            "9×9 patches of the {n} test patients correctly (validation patients: {val:.1%}). " + (
                "The test patients are new people, not new patches of known ones: {gap:.1f} points fewer is what "
                "this small network, trained on a few patients, loses on others, and it is the honest number."
                if gap > 0.03 else "Validation and test agree within {gap:.1f} points."),
            loss=chosen_loss, acc=test_accuracy, n=len(test_ids), val=chosen_val, gap=100 * abs(gap))

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop (and with numerical derivatives) and says
# what differs.
#
# ### Exercise 1 — a dense layer's backward pass
#
# For $Y = X W + \mathbf{b}$ with $X$ of shape (N, D_in) and $W$ (D_in, D_out), write
# `dense_backward(dy, x, W)` returning `(dx, dW, db)` given `dy` $= \partial L/\partial Y$
# (N, D_out). Each gradient has the shape of what it is the gradient of. (Hint: write
# $y_{nk} = \sum_i x_{ni} W_{ik} + b_k$, differentiate one entry, then find the matrix product.)

# %% tags=["exercise"]
def dense_backward(dy, x, W):
    # your answer: return dx, dW, db
    raise NotImplementedError


# %% tags=["solution"]
def dense_backward(dy, x, W):
    dx = dy @ W.T           # (N, D_out) @ (D_out, D_in)
    dW = x.T @ dy           # (D_in, N) @ (N, D_out): summed over the batch
    db = dy.sum(axis=0)     # (D_out,)
    return dx, dW, db


# %% tags=["check"]
hp.exercises.check_dense_backward(dense_backward)

# %% [markdown]
# ### Exercise 2 — softmax cross-entropy
#
# Write `softmax_cross_entropy(z, labels)` for scores `z` (N, K) and integer labels (N,): return
# the mean cross-entropy over the batch and its gradient `dz` (N, K) (section 4). The checker also
# tries scores of ±1000: make your softmax survive them (`np.exp(1000)` is `inf`).

# %% tags=["exercise"]
def softmax_cross_entropy(z, labels):
    # your answer: return loss, dz
    raise NotImplementedError


# %% tags=["solution"]
def softmax_cross_entropy(z, labels):
    n = len(z)
    shifted = z - z.max(axis=1, keepdims=True)  # softmax(z - c) = softmax(z): no overflow
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(n), labels].mean()
    dz = p.copy()
    dz[np.arange(n), labels] -= 1  # p - onehot
    return loss, dz / n


# %% tags=["check"]
hp.exercises.check_softmax_cross_entropy(softmax_cross_entropy)

# %% [markdown]
# ### Exercise 3 — backpropagation through a two-layer network
#
# Now a sigmoid hidden layer and the squared error (averaged over all $N \cdot D_\text{out}$
# output numbers):
#
# $$Z_1 = X W_1 + \mathbf{b}_1,\quad H = \sigma(Z_1),\quad Y = H W_2 + \mathbf{b}_2,\quad
#   L = \operatorname{mean}\,(Y - T)^2 .$$
#
# Write `network_backward(x, t, W1, b1, W2, b2)` returning the dict
# `{"W1": dL/dW1, "b1": ..., "W2": ..., "b2": ...}`. The checker compares each with the numerical
# gradient of handprop's `Dense -> Sigmoid -> Dense` model with `MeanSquaredError`.

# %% tags=["exercise"]
def network_backward(x, t, W1, b1, W2, b2):
    # your answer: forward pass, then the chain rule backwards
    raise NotImplementedError


# %% tags=["solution"]
def network_backward(x, t, W1, b1, W2, b2):
    h = 1 / (1 + np.exp(-(x @ W1 + b1)))   # forward
    y = h @ W2 + b2
    dy = 2 * (y - t) / y.size               # d mean((y - t)^2) / dy
    dz1 = (dy @ W2.T) * h * (1 - h)         # through W2, then the sigmoid's derivative
    return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dy, "b2": dy.sum(axis=0)}


# %% tags=["check"]
hp.exercises.check_network_backward(network_backward)

# %% [markdown]
# **Going further.** Replace the tanh of section 5 by `hp.layers.ELU()` and derive its backward
# from the table of section 2; `hp.gradcheck.check_layer` tells you whether you got it right.
