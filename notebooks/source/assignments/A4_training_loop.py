# %% [markdown]
# # Assignment 4 — The training loop
#
# `model.fit` hides four things: it cuts each epoch into **minibatches**, takes a **training step**
# on each (forward, loss, backward, optimizer step), **evaluates** the model on held-out data, and
# repeats. Here you write them with handprop's pieces, the model's `forward` / `backward`, the loss's
# `forward` / `backward` and the optimizer's `step`, and train a small CNN on the 8×8 digits with
# your own loop. The library's loops (`fit`, `evaluate`, `train_on_batch`, `train_step`) are switched
# off while the checkers run your code.
#
# | piece | what it does |
# |---|---|
# | `model.forward(x, training=True)` | the prediction; `training=False` at evaluation (dropout off, batch norm's running statistics) |
# | `loss.forward(pred, y)` / `loss.backward()` | the mean loss over the batch / its gradient with respect to `pred` |
# | `model.backward(dpred)` | fills every layer's `grads` |
# | `optimizer.step(model.trainable_params(), model.named_grads())` | updates the weights in place |

# %% tags=["setup"]
import os

import matplotlib
import numpy as np

import handprop as hp

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter training for the automated tests
matplotlib.rcParams["figure.dpi"] = 72
hp.set_num_threads(1)

# %% [markdown] tags=["exercises"]
# ## Task 1 — minibatches (3 points)
#
# `minibatches(n, batch_size, rng)` returns one epoch as a list of index arrays: a permutation of
# `range(n)` drawn from `rng`, cut into consecutive batches of `batch_size` (the last one smaller).

# %% tags=["exercise"]
def minibatches(n, batch_size, rng):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def minibatches(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


# %% tags=["check"]
hp.exercises.check_minibatches(minibatches)

# %% [markdown]
# ## Task 2 — one training step (5 points)
#
# `train_step(model, loss, optimizer, xb, yb)`: forward (training mode), loss, backward, optimizer
# step; return the batch's loss (before the step) as a float.

# %% tags=["exercise"]
def train_step(model, loss, optimizer, xb, yb):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def train_step(model, loss, optimizer, xb, yb):
    pred = model.forward(xb, training=True)
    value = loss.forward(pred, yb)
    model.backward(loss.backward())
    optimizer.step(model.trainable_params(), model.named_grads())
    return float(value)


# %% tags=["check"]
hp.exercises.check_train_step(train_step)

# %% [markdown]
# ## Task 3 — evaluation (4 points)
#
# `evaluate(model, loss, x, y, batch_size) -> (mean loss, accuracy)` in inference mode, batch by
# batch (a whole data set may not fit in memory at once). The mean is over samples.

# %% tags=["exercise"]
def evaluate(model, loss, x, y, batch_size):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def evaluate(model, loss, x, y, batch_size):
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i: i + batch_size], y[i: i + batch_size]
        pred = model.forward(xb, training=False)
        total += loss.forward(pred, yb) * len(xb)
        correct += int(np.sum(np.argmax(pred, axis=1) == yb))
    return total / len(x), correct / len(x)


# %% tags=["check"]
hp.exercises.check_evaluate(evaluate)

# %% [markdown]
# ## Task 4 — the loop (5 points)
#
# `train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed) -> history`: make
# one `rng = np.random.default_rng(seed)`; in every epoch take a `train_step` on each of
# `minibatches(len(x), batch_size, rng)`, then `evaluate` on the validation set. Return
# `{"loss": [...], "val_loss": [...], "val_accuracy": [...]}`, one value per epoch (the training
# loss: the epoch's mean over its samples).

# %% tags=["exercise"]
def train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed):
    rng = np.random.default_rng(seed)
    history = {"loss": [], "val_loss": [], "val_accuracy": []}
    for _ in range(epochs):
        total = 0.0
        for idx in minibatches(len(x), batch_size, rng):
            total += train_step(model, loss, optimizer, x[idx], y[idx]) * len(idx)
        val_loss, val_accuracy = evaluate(model, loss, x_val, y_val, batch_size)
        history["loss"].append(total / len(x))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
    return history


# %% tags=["check"]
hp.exercises.check_train(minibatches, train)

# %% [markdown]
# ## Task 5 — train a CNN with your loop (3 points)
#
# Train the CNN below on the digits with your `train`, holding out the last 300 training digits
# for validation (never the test digits: the checker measures the accuracy of `cnn` on them, and
# needs at least 0.9).

# %%
(x_train, y_train), (x_test, y_test) = hp.data.load_digits(flatten=False)
x_fit, y_fit, x_val, y_val = x_train[:-300], y_train[:-300], x_train[-300:], y_train[-300:]
cnn = hp.Sequential([hp.layers.Conv2D(8, 3, padding="same"), hp.layers.BatchNorm(), hp.layers.ReLU(),
                     hp.layers.MaxPool2D(2), hp.layers.Flatten(), hp.layers.Dense(10)], seed=0)
cnn.build((1, 8, 8))
epochs = 4 if QUICK else 10
try:
    history = train(cnn, hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.05, momentum=0.9),
                    x_fit, y_fit, x_val, y_val, epochs=epochs, batch_size=32, seed=0)
    print("validation accuracy per epoch:", np.round(history["val_accuracy"], 3))
except NotImplementedError:
    history = None
    print("write Tasks 1-4 first")

# %%
if history:
    display(hp.viz.plot_history(history))  # noqa: F821 (display: Jupyter's)

# %% tags=["check"]
hp.exercises.check_cnn(cnn)
