# %% [markdown]
# # Chapter 2 — Optimization
#
# Training a network means finding weights $\theta$ that make the loss $L(\theta)$ small. The loss
# of a real network has millions of dimensions and no formula for its minimum, so we *walk*
# downhill: start somewhere, look at the gradient $\nabla L(\theta)$, take a step against it,
# repeat. This chapter is about how to take those steps:
#
# 1. gradient descent and **minibatches** (stochastic gradient descent, SGD);
# 2. the **learning rate**: too small crawls, too large diverges;
# 3. **momentum**, which smooths the zig-zag of SGD in narrow valleys;
# 4. **adaptive** learning rates, one per weight: AdaGrad, RMSprop, AdaDelta, and **Adam**;
# 5. all of them side by side, on two-dimensional test surfaces (where we can *see* the path) and
#    on a real network's training curves, the winner chosen on validation and tested once (section 7);
# 6. a postscript: **learning-rate decay** (section 8).
#
# Every optimizer in `hp.optimizers` follows the equations of `torch.optim` and updates a plain
# dict of named arrays, `opt.step(params, grads)`, so the very same object trains a network or
# walks a point $(x, y)$ across a surface.
#
# > **Quick mode.** The variable `QUICK` in the next cell makes every experiment smaller (fewer
# > epochs, steps and animation frames) so that the automated tests run this notebook in seconds.
# > It is `False` unless the environment sets `HANDPROP_QUICK=1`; the pictures tell the same story
# > either way.

# %% tags=["setup"]
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp
from handprop.optimizers import SGD, AdaDelta, AdaGrad, Adam, RMSprop

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # smaller runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("02_optimization")  # the numbers this chapter states (see hp.lesson)
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Gradient descent and minibatches
#
# The loss of a network is an average over the $n$ training examples,
# $L(\theta) = \frac{1}{n}\sum_{i=1}^{n} \ell(f(x_i; \theta), y_i)$. **Gradient descent** steps
# against its gradient with a **learning rate** $\eta$:
#
# $$\theta \leftarrow \theta - \eta\, \nabla L(\theta).$$
#
# Computing $\nabla L$ exactly needs a pass over all $n$ examples for every single step.
# **Minibatch stochastic gradient descent** estimates it from a small random batch $B$ of examples
# instead, $\;g = \frac{1}{|B|}\sum_{i \in B} \nabla \ell_i(\theta)$, and takes many cheap, noisy
# steps. An **epoch** is one pass over the training set in a shuffled order, cut into batches.
#
# We use the handwritten digits that ship with handprop (8×8 images, 10 classes) and a small
# multilayer perceptron. Its training images are split once more: a fifth of them become the
# **validation** set, which we watch during training and use for every choice; the **test** set
# is looked at once, at the end of the chapter.

# %% [markdown]
# The slide says that computing the gradient on all data is infeasible. Precisely, full-batch
# gradient descent is *expensive per step* (one pass over the whole training set for every
# update), not infeasible: for a small data set it is a fine method, and `fit(batch_size=len(x))`
# runs it here. Minibatches win because many cheap, noisy steps make more progress per pass over the
# data, and the noise helps to leave flat regions and saddles.

# %%
(x_fit, y_fit), (x_test, y_test) = hp.data.load_digits()
shuffle = np.random.default_rng(0).permutation(len(x_fit))
n_val = len(x_fit) // 5
x_val, y_val = x_fit[shuffle[:n_val]], y_fit[shuffle[:n_val]]
x_train, y_train = x_fit[shuffle[n_val:]], y_fit[shuffle[n_val:]]
print("training set:", x_train.shape, " validation set:", x_val.shape, " test set:", x_test.shape)


def make_mlp(seed=0):
    model = hp.Sequential([hp.layers.Dense(32), hp.layers.ReLU(), hp.layers.Dense(10)], seed=seed)
    model.build((64,))
    return model


model = make_mlp()
model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=SGD(lr=0.1), metrics=["accuracy"])
model.summary();

# %% [markdown]
# One step of minibatch SGD, written out: forward pass, loss, backward pass, update. This is what
# `model.fit` does for every batch.

# %%
rng = np.random.default_rng(0)
batch = rng.choice(len(x_train), size=32, replace=False)

prediction = model.forward(x_train[batch])            # (32, 10) class scores
loss = model.loss.forward(prediction, y_train[batch])  # mean cross-entropy over the batch
model.backward(model.loss.backward())                  # fills every layer's grads
model.optimizer.step(model.named_params(), model.named_grads())  # theta <- theta - lr * g

print(f"loss on the batch before the step: {loss:.4f}")
print(f"loss on the same batch after it:   {model.loss.forward(model.forward(x_train[batch]), y_train[batch]):.4f}")


# %% [markdown]
# How good is the minibatch estimate? Below, at the initial weights, we compare the gradient of
# many random batches with the full gradient (cosine similarity 1 = same direction). Larger
# batches point closer to the true direction, but each costs more to compute: with batches of
# 32 an epoch of our training set makes $\lceil n / 32 \rceil$ steps, with the full batch one.

# %%
def flat_gradient(model, x, y):
    model.loss.forward(model.forward(x), y)
    model.backward(model.loss.backward())
    return np.concatenate([g.ravel() for g in model.named_grads().values()])


model = make_mlp()
model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=SGD(lr=0.1))
full = flat_gradient(model, x_train, y_train)
batch_sizes = [1, 4, 16, 64, 256, 1024]
similarity = []
for size in batch_sizes:
    cosines = []
    for _ in range(10 if QUICK else 50):
        batch = rng.choice(len(x_train), size=size, replace=False)
        g = flat_gradient(model, x_train[batch], y_train[batch])
        cosines.append(g @ full / (np.linalg.norm(g) * np.linalg.norm(full)))
    similarity.append(cosines)

fig, ax = plt.subplots(figsize=(8, 4))
ax.boxplot(similarity)
ax.set_xticks(range(1, len(batch_sizes) + 1), [str(s) for s in batch_sizes])
ax.set_xlabel("batch size")
ax.set_ylabel("cosine(batch gradient, full gradient)")
ax.set_title("minibatch gradients are noisy estimates")
plt.show()

# %% [markdown]
# What that means for training: the same network, the same learning rate and number of epochs,
# four batch sizes. Per epoch, small batches make more (noisier) steps and get further; the full
# batch makes one step per epoch and hardly moves. (Per *second* the comparison is closer: a step
# on a big batch costs more, and uses the processor better.) `hp.viz.plot_history` draws every key
# that contains "loss" in one panel, so one dict holds all four curves.

# %%
epochs = 5 if QUICK else 20
curves, final_loss = {}, {}
for batch_size in [8, 32, 256, len(x_train)]:
    model = make_mlp()
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=SGD(lr=0.1), metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    curves[f"loss (batch {batch_size})"] = history.history["loss"]
    steps = -(-len(x_train) // batch_size)
    final_loss[batch_size] = history.history["loss"][-1]
    print(f"batch {batch_size:4d}: {steps:3d} steps per epoch, final training loss {final_loss[batch_size]:.3f}")
results.claim("small_batches_get_further_per_epoch", final_loss[8] < final_loss[len(x_train)],
              "After {epochs} epochs the batches of 8 reach a training loss of {small:.3f}, the full batch "
              "({n} examples, one step per epoch) only {full:.3f}.",
              "After {epochs} epochs the batches of 8 reach a training loss of {small:.3f}, no lower than the full "
              "batch's {full:.3f}: here the extra steps did not pay.",
              epochs=epochs, small=final_loss[8], full=final_loss[len(x_train)], n=len(x_train))
hp.viz.plot_history(curves, figsize=(9, 4), title="SGD, lr = 0.1: training loss for four batch sizes")

# %% [markdown]
# ## 2. The learning rate
#
# The simplest surface that shows what goes wrong is a bowl that is steeper in one direction than
# the other, $f(x, y) = x^2/20 + y^2$, with its minimum at $(0, 0)$. Its gradient is
# $(x/10,\; 2y)$, so one step of gradient descent changes each coordinate on its own:
#
# $$x \leftarrow x - \eta\,\tfrac{x}{10} = \left(1 - \tfrac{\eta}{10}\right) x, \qquad
#   y \leftarrow \left(1 - 2\eta\right) y .$$
#
# In general, along a direction of curvature $c$ (a second derivative), a step multiplies the
# distance to the minimum by $(1 - \eta c)$: it shrinks when $|1 - \eta c| < 1$, i.e.
# $0 < \eta < 2/c$, and it flips sign (oscillates) when $\eta c > 1$. One learning rate has to
# suit every direction at once: the steep direction sets the largest stable $\eta$, and with it the
# flat direction crawls. (Exercise 1 asks for that largest $\eta$ on this bowl.)

# %% tags=["figure"]
start = (-7.0, 2.0)
steps = 40
hp.viz.plot_trajectories({"lr = 0.1 (slow)": SGD(lr=0.1), "lr = 0.9 (oscillates in y)": SGD(lr=0.9),
                          "lr = 1.02 (too large)": SGD(lr=1.02)}, "quadratic", start, steps,
                         title="SGD on x²/20 + y² with three learning rates")

# %% [markdown]
# On the digits network the same three regimes appear: a learning rate that is too small learns
# slowly, a good one learns fast, and a too-large one never gets going: its first steps throw the
# weights so far that the network is stuck at chance level (a loss of ln 10 ≈ 2.3 for ten classes),
# or the loss overflows to `nan`.

# %%
curves, by_lr = {}, {}
for lr in [0.01, 0.3, 3.0]:
    model = make_mlp()
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=SGD(lr=lr), metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    curves[f"loss (lr = {lr})"] = history.history["loss"]
    by_lr[lr] = history.history["loss"][-1]
    print(f"lr = {lr:5}: final training loss {history.history['loss'][-1]:.3f}, "
          f"accuracy {history.history['accuracy'][-1]:.3f}")
results.claim("too_large_learning_rate_fails", not np.isfinite(by_lr[3.0]) or by_lr[3.0] > 0.8 * np.log(10),
              "With lr = 3 the training loss ends at {big:.2f}, near chance level (ln 10 = {chance:.2f}); lr = 0.3 "
              "reaches {good:.3f} and lr = 0.01 {small:.3f}.",
              "With lr = 3 the training loss ends at {big:.2f}, below chance level (ln 10 = {chance:.2f}): this time "
              "the large rate got going (lr = 0.3: {good:.3f}, lr = 0.01: {small:.3f}).",
              big=by_lr[3.0], chance=np.log(10), good=by_lr[0.3], small=by_lr[0.01])
hp.viz.plot_history(curves, figsize=(9, 4), title="SGD with batches of 32: training loss for three learning rates")

# %% [markdown]
# ## 3. Momentum
#
# In the bowl, SGD with a large learning rate bounces from one wall of the valley to the other
# while creeping along its floor. **Momentum** keeps a velocity $v$, a running sum of past
# gradients, and steps along it (the form of `torch.optim.SGD`, with momentum $\mu$, usually 0.9):
#
# $$v \leftarrow \mu\, v + g, \qquad \theta \leftarrow \theta - \eta\, v .$$
#
# Gradients that keep pointing the same way (along the valley) add up, and the step grows up to
# $1/(1-\mu)$ = 10 times; gradients that flip sign every step (across the valley) cancel. Keras and
# Sutskever et al. write the same method as $v \leftarrow \mu v - \eta g,\ \theta \leftarrow
# \theta + v$: with a constant $\eta$ it walks exactly the same path. **Nesterov** momentum
# (`nesterov=True`) steps with $g + \mu v$ instead of $v$: it looks one step ahead and brakes
# earlier.

# %% tags=["figure"]
hp.viz.plot_trajectories({"SGD lr=0.9": SGD(lr=0.9), "momentum 0.7, lr=0.3": SGD(lr=0.3, momentum=0.7),
                          "Nesterov 0.7, lr=0.3": SGD(lr=0.3, momentum=0.7, nesterov=True)},
                         "quadratic", start, steps, title="Momentum damps the zig-zag and speeds up along x")

# %% [markdown]
# ## 4. Adaptive learning rates: AdaGrad, RMSprop, AdaDelta, Adam
#
# Instead of one learning rate for all weights, these methods divide each coordinate's step by the
# typical size of its own gradient: steep directions get small steps, flat ones large steps.
# (All operations are elementwise; $\epsilon$ avoids a division by zero.)
#
# **AdaGrad** divides by the root of the *sum* of all past squared gradients:
#
# $$G \leftarrow G + g^2, \qquad \theta \leftarrow \theta - \eta\, \frac{g}{\sqrt{G} + \epsilon}.$$
#
# Since $G$ only grows, the steps only shrink, and AdaGrad eventually stops moving.
# **RMSprop** (Hinton) uses a running *average* instead, so old gradients are forgotten
# ($\alpha = 0.99$):
#
# $$v \leftarrow \alpha\, v + (1-\alpha)\, g^2, \qquad \theta \leftarrow \theta - \eta\, \frac{g}{\sqrt{v} + \epsilon}.$$
#
# **AdaDelta** (Zeiler) also keeps a running average $u$ of the squared *steps*, and uses
# $\sqrt{u+\epsilon}$ in place of the learning rate, so the step has the units of $\theta$ and
# there is (almost) no learning rate to choose:
#
# $$\Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad u \leftarrow \rho\, u + (1-\rho)\,\Delta^2,
#   \qquad \theta \leftarrow \theta - \Delta .$$

# %% [markdown]
# The slide says the learning rate should decay while approaching the minimum, and that RMSprop and
# AdaDelta keep a running average of the gradient *magnitude* per parameter, AdaGrad with a
# monotonically decreasing learning rate. Precisely: they average the **squared** gradient and divide
# the step by its root (a root mean square), as the equations above show; AdaDelta also averages the
# squared steps. Only AdaGrad's per-weight step size $\eta / (\sqrt{G} + \epsilon)$ can only
# shrink. RMSprop's and Adam's steps do *not* decay near a minimum: when the gradients are
# consistently small, $g / \sqrt{v}$ stays of order 1, and the step stays of order $\eta$. A learning
# rate that decays is a **schedule** (`hp.schedules`, applied during `fit` with
# `hp.schedules.LearningRateScheduler`), on top of any optimizer.

# %% tags=["figure"]
hp.viz.plot_trajectories({"AdaGrad lr=1.5": AdaGrad(lr=1.5), "RMSprop lr=0.15": RMSprop(lr=0.15),
                          "AdaDelta eps=1e-2": AdaDelta(lr=1.0, eps=1e-2)},
                         "quadratic", start, 60 if not QUICK else 40,
                         title="Per-coordinate step sizes: both directions move at the same pace")

# %% [markdown]
# **Adam** (Kingma & Ba) is RMSprop with momentum: running averages of the gradient $m$ (the
# momentum part, $\beta_1 = 0.9$) and of its square $v$ (the RMSprop part, $\beta_2 = 0.999$).
# Both start at zero, so early on they are too small; dividing by $1 - \beta^t$ undoes that bias
# ($t = 1, 2, \dots$ counts the steps):
#
# $$m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\, g^2,$$
# $$\hat m = \frac{m}{1-\beta_1^t}, \qquad \hat v = \frac{v}{1-\beta_2^t}, \qquad
#   \theta \leftarrow \theta - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}.$$
#
# Rosenbrock's function $f = (1-x)^2 + 100\,(y - x^2)^2$ is a curved, flat-bottomed valley with its
# minimum at $(1, 1)$. At the same learning rate, Adam's momentum carries it along the floor,
# while RMSprop's steps rattle across it.

# %% [markdown]
# The slide says Adam is like RMSprop with momentum. Precisely, Adam divides a running *average* of
# the gradients, $\hat m$, by the root of a running average of their squares, $\sqrt{\hat v}$, and
# **bias-corrects** both, which makes its first steps about $\eta$ long. "RMSprop with momentum" is
# a different algorithm (PyTorch's and handprop's `RMSprop(momentum=0.9)`): it accumulates the
# already-divided steps $g / (\sqrt{v} + \epsilon)$ in a velocity, without bias correction. Both
# are in `hp.optimizers`; the update equations are in their docstrings.

# %% tags=["figure"]
hp.viz.plot_trajectories({"RMSprop lr=0.05": RMSprop(lr=0.05), "Adam lr=0.05": Adam(lr=0.05)},
                         "rosenbrock", (-1.5, 2.0), 200 if QUICK else 500,
                         title="Adam vs RMSprop")

# %% [markdown]
# ## 5. All of them, side by side
#
# The seven optimizers on Rosenbrock's valley, each with a learning rate that works for it. Which
# ones reach the minimum in 500 steps? Note how plain SGD needs a tiny learning rate to survive
# the steep walls and then barely moves along the floor.

# %% tags=["thumbnail"]
def seven(sgd=1e-3, rmsprop=0.01, adagrad=0.5, adam=0.1):
    return {f"SGD lr={sgd}": SGD(lr=sgd), "momentum 0.9": SGD(lr=sgd, momentum=0.9),
            "Nesterov 0.9": SGD(lr=sgd, momentum=0.9, nesterov=True), f"RMSprop lr={rmsprop}": RMSprop(lr=rmsprop),
            f"AdaGrad lr={adagrad}": AdaGrad(lr=adagrad), "AdaDelta": AdaDelta(), f"Adam lr={adam}": Adam(lr=adam)}


hp.viz.plot_trajectories(seven(), "rosenbrock", (-1.5, 2.0), 200 if QUICK else 500,
                         title="Seven optimizers on Rosenbrock's valley")

# %% [markdown]
# The same race as an animation (it plays in the notebook; `save_to="race.gif"` would also write
# it to a file):

# %% tags=["animation"]
hp.viz.animate_trajectories({"SGD": SGD(lr=1e-3), "momentum 0.9": SGD(lr=1e-3, momentum=0.9),
                             "RMSprop": RMSprop(lr=0.01), "Adam": Adam(lr=0.1)},
                            "rosenbrock", (-1.5, 2.0), steps=300, frames=8 if QUICK else 20,
                            figsize=(9, 3.8), dpi=80)

# %% [markdown]
# **Saddle points.** In many dimensions, points where the gradient vanishes are far more often
# saddles than minima. On $f = x^2 - y^2$, started just off the ridge, plain SGD needs many steps
# to notice that it can go down along $y$, because the gradient there is tiny; momentum and the
# adaptive methods, which enlarge small consistent gradients, leave much sooner.

# %% tags=["figure"]
hp.viz.plot_trajectories({"SGD lr=0.05": SGD(lr=0.05), "momentum 0.9": SGD(lr=0.05, momentum=0.9),
                          "RMSprop lr=0.05": RMSprop(lr=0.05), "Adam lr=0.05": Adam(lr=0.05)},
                         "saddle", (-1.5, 0.01), 80, title="Escaping a saddle point")

# %% [markdown]
# ## 6. On a real network
#
# Back to the digits. Each optimizer trains the same network from the same initial weights, with
# its customary learning rate; we record the loss on the validation images after every epoch
# (`validation_data`). `verbose=0` keeps the output short; `verbose=1` shows a progress bar per
# epoch and `verbose=2` one line per epoch.

# %%
optimizers = {
    "SGD": SGD(lr=0.05), "momentum": SGD(lr=0.05, momentum=0.9), "AdaGrad": AdaGrad(lr=0.05),
    "RMSprop": RMSprop(lr=0.001), "AdaDelta": AdaDelta(lr=1.0), "Adam": Adam(lr=0.001),
}
epochs = 6 if QUICK else 25
curves, accuracy, first_loss, trained = {}, {}, {}, {}
for name, optimizer in optimizers.items():
    model = make_mlp()
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=optimizer, metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_val, y_val), verbose=0)
    curves[f"val_loss ({name})"] = history.history["val_loss"]
    accuracy[name] = history.history["val_accuracy"][-1]
    first_loss[name] = history.history["val_loss"][0]
    trained[name] = model

for name, acc in sorted(accuracy.items(), key=lambda item: -item[1]):
    print(f"{name:9s} validation accuracy after {epochs} epochs: {acc:.3f}")
hp.viz.plot_history(curves, figsize=(9, 4.5), title="Validation loss per epoch, same network and initial weights")

# %%
best_name, worst_name = max(accuracy, key=accuracy.get), min(accuracy, key=accuracy.get)
spread = accuracy[best_name] - accuracy[worst_name]
results.claim("optimizers_differ_little", spread < 0.03,
              "There is no clear winner: the six end within {points:.1f} points of each other on the validation set "
              "({best} best with {best_acc:.3f}, {worst} last with {worst_acc:.3f}).",
              "Here the choice matters: {points:.1f} points of accuracy separate {best} ({best_acc:.3f}) from {worst} "
              "({worst_acc:.3f}) "
              "on the validation set.",
              points=100 * spread, best=best_name, best_acc=accuracy[best_name], worst=worst_name,
              worst_acc=accuracy[worst_name])
others = np.median([v for k, v in first_loss.items() if k != "Adam"])
results.claim("adam_default_starts_slower", first_loss["Adam"] > others,
              "Adam at its default `lr=0.001` starts slower than the others (validation loss after one epoch "
              "{adam:.2f}, the median of the others {others:.2f}): its default rate is small for this network.",
              "Adam at its default `lr=0.001` starts no slower than the others (validation loss after one epoch "
              "{adam:.2f}, the median of the others {others:.2f}).",
              adam=first_loss["Adam"], others=others)

# %% [markdown]
# How well each method does depends on its learning rate as much as on the method: the rates here
# are customary defaults, not tuned (tuning them on the validation set is exercise material).
#
# ## 7. The test set, once
#
# The choice is made on the validation set: the optimizer with the best validation accuracy. Only
# now do we look at the test images, once, with that one network:

# %%
test_accuracy = trained[best_name].evaluate(x_test, y_test)[1]
results.say("The network trained with {name} (chosen on validation accuracy, {val:.3f}) classifies {acc:.1%} of "
            "the {n} test digits correctly.", name=best_name, val=accuracy[best_name], acc=test_accuracy,
            n=len(x_test))

# %% [markdown]
# ## 8. Postscript: learning-rate decay
#
# Near a minimum, a fixed step keeps overshooting it: minibatch gradients are noisy, and a step
# that was right far away is too large close by. The remedy is to start large and make the steps
# smaller as training goes on. `hp.schedules` has the classic shapes (`StepDecay`: halve every few
# epochs; `ExponentialDecay`: multiply by $\gamma$ every epoch; `CosineDecay`), applied during
# `fit` by the callback `hp.schedules.LearningRateScheduler`, which also records the rate in the
# history.
#
# The experiment: the same small network on the digits, plain SGD starting at `lr=0.5` with
# minibatches of 8 (large, noisy steps), constant or decayed. A fifth of the training digits is
# held out as a **validation** set, and its loss after every epoch shows whether training settles.

# %%
hp.set_num_threads(1)  # a small network trains fastest on one thread (and a shared machine stays responsive)
(x_digits, y_digits), _ = hp.data.load_digits()  # the test digits are not used here
n_val = len(x_digits) // 5
x_fit, y_fit, x_val, y_val = x_digits[n_val:], y_digits[n_val:], x_digits[:n_val], y_digits[:n_val]
decay_epochs = 8 if QUICK else 25
schedules = {"constant 0.5": None, "step decay (halve every 5)": hp.schedules.StepDecay(0.5, drop=0.5, every=5),
             "exponential decay (×0.85)": hp.schedules.ExponentialDecay(0.5, gamma=0.85)}
decay_runs = {name: [] for name in schedules}
for seed in [0] if QUICK else [0, 1, 2]:
    for name, schedule in schedules.items():
        net = hp.Sequential([hp.layers.Dense(64), hp.layers.ReLU(), hp.layers.Dense(10)], seed=seed, input_shape=(64,))
        net.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=SGD(lr=0.5), metrics=["accuracy"])
        callbacks = [hp.schedules.LearningRateScheduler(schedule)] if schedule is not None else None
        decay_runs[name].append(net.fit(x_fit, y_fit, epochs=decay_epochs, batch_size=8, verbose=0,
                                        validation_data=(x_val, y_val), callbacks=callbacks).history)

# %% tags=["figure"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
for name, histories in decay_runs.items():
    epochs_axis = np.arange(1, decay_epochs + 1)
    rates = histories[0].get("lr", [0.5] * decay_epochs)
    axes[0].plot(epochs_axis, rates, marker="o", label=name)
    axes[1].plot(epochs_axis, histories[0]["val_loss"], marker="o", label=name)
axes[0].set_title("learning rate")
axes[1].set_title("validation loss (seed 0)")
for ax in axes:
    ax.set_xlabel("epoch")
axes[0].legend()
plt.show()

# %%
last = min(5, decay_epochs)
decay_summary = {name: (np.mean([np.mean(h["val_loss"][-last:]) for h in histories]),  # where it ends
                        np.mean([np.std(np.diff(h["val_loss"][-2 * last:])) for h in histories]),  # how it jitters
                        np.mean([h["val_accuracy"][-1] for h in histories]))
                 for name, histories in decay_runs.items()}
for name, (loss, jitter, acc) in decay_summary.items():
    print(f"{name:27s}: validation loss {loss:.3f} (last {last} epochs), epoch-to-epoch jitter {jitter:.4f}, "
          f"validation accuracy {acc:.3f}")
constant = decay_summary["constant 0.5"]
decayed = [v for k, v in decay_summary.items() if k != "constant 0.5"]
results.claim("lr_decay_steadies_validation_loss", max(d[1] for d in decayed) < constant[1] / 2,
              "With decay the validation loss settles: its epoch-to-epoch jitter is {decay_jitter_step:.4f} (step) "
              "and {decay_jitter_exponential:.4f} "
              "(exponential) against {decay_jitter_constant:.4f} with the constant rate.",
              "Decay does not steady the validation loss here: jitter {decay_jitter_step:.4f} (step) and "
              "{decay_jitter_exponential:.4f} (exponential) "
              "against {decay_jitter_constant:.4f} with the constant rate.",
              decay_jitter_step=decayed[0][1], decay_jitter_exponential=decayed[1][1],
              decay_jitter_constant=constant[1])
results.claim("lr_decay_lowers_validation_loss", max(d[0] for d in decayed) < constant[0],
              "It also ends lower: validation loss {decay_val_loss_step:.3f} and {decay_val_loss_exponential:.3f} "
              "against {decay_val_loss_constant:.3f}, while the accuracy "
              "hardly moves ({decay_val_acc_step:.3f} and {decay_val_acc_exponential:.3f} against "
              "{decay_val_acc_constant:.3f}): the constant rate keeps jumping around "
              "the minimum, the decayed ones settle into it.",
              "It does not end lower: validation loss {decay_val_loss_step:.3f} and "
              "{decay_val_loss_exponential:.3f} against {decay_val_loss_constant:.3f} (accuracy "
              "{decay_val_acc_step:.3f} "
              "and {decay_val_acc_exponential:.3f} against {decay_val_acc_constant:.3f}).",
              decay_val_loss_step=decayed[0][0], decay_val_loss_exponential=decayed[1][0],
              decay_val_loss_constant=constant[0], decay_val_acc_step=decayed[0][2],
              decay_val_acc_exponential=decayed[1][2], decay_val_acc_constant=constant[2]);

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop's own implementation and says what differs.
#
# ### Exercise 1 — the largest stable learning rate
#
# For plain gradient descent on $f(x, y) = x^2/20 + y^2$, what is the largest learning rate $\eta$
# for which the walk still converges to the minimum (to two decimals)? Work it out from the update
# of section 2, then check it on the plot of section 2 by trying values just below and just above it.

# %% tags=["exercise"]
largest_stable_lr = None  # your answer: a number

# %% tags=["solution"]
# Along y a step multiplies y by (1 - 2 lr): the walk converges while |1 - 2 lr| < 1, i.e. lr < 1
# (strictly: at lr = 1 the factor is -1 and y flips sign forever). Along x the factor is
# (1 - lr / 10), fine up to lr = 20: the steep direction decides.
largest_stable_lr = 0.99

# %% tags=["check"]
hp.exercises.check_largest_stable_lr(largest_stable_lr)

# %% [markdown]
# ### Exercise 2 — one step of momentum
#
# Write `momentum_step(w, dw, state, lr, momentum)`: one update of SGD with momentum for an array
# of weights `w` with gradient `dw`, returning the new `w`. `state` is a dict that is empty at the
# first call and that the checker passes back at every call: keep your velocity in it. Do not
# modify `dw`.
#
# $$v \leftarrow \mu\, v + g, \qquad w \leftarrow w - \eta\, v \qquad (v = 0 \text{ at the start})$$

# %% tags=["exercise"]
def momentum_step(w, dw, state, lr, momentum):
    # your answer: update the velocity kept in state, then return the new w
    raise NotImplementedError


# %% tags=["solution"]
def momentum_step(w, dw, state, lr, momentum):
    v = momentum * state.get("v", np.zeros_like(w)) + dw
    state["v"] = v
    return w - lr * v


# %% tags=["check"]
hp.exercises.check_momentum_step(momentum_step)

# %% [markdown]
# ### Exercise 3 — one step of Adam
#
# Write `adam_step(w, dw, state, lr, beta1, beta2, eps)`, one update of Adam with the equations of
# section 4, returning the new `w`. Keep $m$, $v$ and the step counter $t$ in `state` ($t = 1$ at
# the first step). The checker also tries small gradients with a large `eps`, where it matters
# whether $\epsilon$ is added inside or outside the square root.

# %% tags=["exercise"]
def adam_step(w, dw, state, lr, beta1, beta2, eps):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def adam_step(w, dw, state, lr, beta1, beta2, eps):
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


# %% tags=["check"]
hp.exercises.check_adam_step(adam_step)

# %% [markdown]
# **Going further.** `hp.schedules` has learning-rate schedules (step, exponential and cosine
# decay) and the `LearningRateScheduler` callback; try `StepDecay(0.3, drop=0.5, every=5)` on the
# digits network and look at the `lr` panel of `hp.viz.plot_history`.
