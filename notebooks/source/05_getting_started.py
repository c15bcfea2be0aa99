# %% [markdown]
# # Chapter 5 — Getting started: the tutorial's Keras code in handprop
#
# The tutorial's code is written for **Keras 1** (its 2016 version) **with the TensorFlow
# backend**: its first program sets `KERAS_BACKEND` to `"tensorflow"`, and its ConvNet stores
# images channels-last (`dim_ordering='tf'`, `input_shape=(29,29,3)`). It uses the 2016
# spellings: `output_dim=`, `init=`, `border_mode=`, `Convolution2D(20, 5,5)` for 20 filters of
# 5×5, `nb_epoch=`, `predict_classes`. This chapter
#
# 1. quotes the slides' two Keras programs exactly as written and **runs them** through
#    `handprop.keras1`, a thin translation of those spellings onto handprop's own layers (each
#    `from keras.X import Y` becomes `from handprop.keras1.X import Y`, nothing else changes);
# 2. puts each next to the idiomatic handprop version, and shows what handprop's main API
#    accepts of Keras' spellings and the three things it refuses;
# 3. trains the tutorial's ConvNet as a vessel classifier, with training, validation and test
#    patients;
# 4. saves and loads a model, and hands it over to PyTorch.
#
# Keras itself is not needed.
#
# > **Quick mode.** `QUICK` (next cell) makes the training runs shorter so that the automated tests
# > run this notebook quickly. It is `False` unless the environment sets `HANDPROP_QUICK=1`.

# %% tags=["setup"]
import os
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib
import numpy as np

import handprop as hp
from handprop.optimizers import SGD

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter runs for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("05_getting_started")  # the numbers this chapter states (see hp.lesson)
hp.set_num_threads(1)  # small models run fastest on one thread, and a shared server stays responsive
L = hp.layers
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. The getting-started network, as the slides wrote it
#
# The slides' first program, quoted exactly as written (three slides: the network, its
# compilation, then training, evaluation and testing):
#
# ```python
# os.environ["KERAS_BACKEND"] = "tensorflow"
# from keras.models import Sequential
# model = Sequential()
#
# from keras.layers.core import Dense, Activation
# model.add(Dense(output_dim=64, input_dim=100,
#                 init="glorot_uniform"))
# model.add(Activation("relu"))
# model.add(Dense(output_dim=10, init="glorot_uniform"))
# model.add(Activation("softmax"))
# ```
#
# ```python
# from keras.optimizers import SGD
# model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01,
# momentum=0.9, nesterov=True))
# ```
#
# ```python
# model.fit(X_train, Y_train, nb_epoch=5, batch_size=32)
# objective_score = model.evaluate(X_test, Y_test, batch_size=32)
# classes = model.predict_classes(X_test, batch_size=32)
# ```
#
# *Source:* Išgum, de Vos, Lessmann, Wolterink (UMC Utrecht), Nielsen, Pai (University of
# Copenhagen), "A tutorial on Deep Learning in Medical Image Analysis", part 5 "Getting started"
# (A. Pai, Y.-C. Teng, J. Blair, M. Nielsen), code examples. Licensed
# [CC BY-NC-SA 4.0](http://creativecommons.org/licenses/by-nc-sa/4.0/); quoted unchanged.
#
# The program needs `X_train, Y_train, X_test, Y_test` with 100 inputs and 10 classes. Ours: the
# handwritten digits that ship with handprop (8×8 images), with a one-pixel black border (10×10 =
# 100 inputs); `Y_*` are one-hot rows, as Keras 1's `categorical_crossentropy` wants. The test
# digits go only to `evaluate` and `predict_classes`.

# %%
(digits_train, labels_train), (digits_test, labels_test) = hp.data.load_digits(flatten=False)


def as_100_inputs(images):
    """(N, 1, 8, 8) digits with a one-pixel border -> (N, 100)."""
    return np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1))).reshape(len(images), 100)


X_train, Y_train = as_100_inputs(digits_train), np.eye(10, dtype=np.float32)[labels_train]
X_test, Y_test = as_100_inputs(digits_test), np.eye(10, dtype=np.float32)[labels_test]
print("X_train", X_train.shape, "Y_train", Y_train.shape, "  X_test", X_test.shape, "Y_test", Y_test.shape)

# %% [markdown]
# The same program, run by handprop: only the three `from keras.` lines now read
# `from handprop.keras1.`. (`fit` draws a progress bar per epoch, Keras' default `verbose=1`; it
# moves when the cell runs, and a saved copy of the notebook may show only its first frame.)

# %%
os.environ["KERAS_BACKEND"] = "tensorflow"
from handprop.keras1.models import Sequential
model = Sequential()

from handprop.keras1.layers.core import Dense, Activation
model.add(Dense(output_dim=64, input_dim=100,
                init="glorot_uniform"))
model.add(Activation("relu"))
model.add(Dense(output_dim=10, init="glorot_uniform"))
model.add(Activation("softmax"))

from handprop.keras1.optimizers import SGD
model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01,
momentum=0.9, nesterov=True))

model.fit(X_train, Y_train, nb_epoch=5, batch_size=32)
objective_score = model.evaluate(X_test, Y_test, batch_size=32)
classes = model.predict_classes(X_test, batch_size=32)

# %%
slide_mlp = model  # the slide calls it `model`; so does the ConvNet slide (section 3): this name stays the MLP
slide_accuracy = float((classes == labels_test).mean())
results.say("The slide's program, run by `handprop.keras1`: after {slide_epochs} epochs the test loss "
            "(`objective_score`) is {slide_test_loss:.3f} and `predict_classes` gets {slide_test_accuracy:.1%} of the "
            "{n_test_digits} test digits right "
            "(chance: 10%).", slide_epochs=5, slide_test_loss=objective_score, slide_test_accuracy=slide_accuracy,
            n_test_digits=len(X_test))
slide_mlp.summary();

# %% [markdown]
# The slide says, next to `nb_epoch=5`, that it is the number of iterations. Precisely, it is the
# number of **epochs**: passes over the whole training set. One iteration is one minibatch, one
# update of the weights, so an epoch is $\lceil N / \text{batch\_size} \rceil$ iterations (the
# last batch may be smaller): the progress bars above count them. Keras 2 renamed the argument
# `epochs`, which is what handprop's own `fit` takes.

# %%
iterations_per_epoch = int(np.ceil(len(X_train) / 32))
results.say("Here $N$ = {n_train_digits} training digits and `batch_size=32` make {iterations_per_epoch} iterations "
            "per epoch, so `nb_epoch=5` is {slide_iterations} iterations (weight updates), not 5.",
            n_train_digits=len(X_train), iterations_per_epoch=iterations_per_epoch,
            slide_iterations=5 * iterations_per_epoch)

# %% [markdown]
# What the translation did, line by line — each Keras 1 name returned handprop's own object:
#
# | the slide (Keras 1) | handprop |
# |---|---|
# | `Dense(output_dim=64, input_dim=100, init="glorot_uniform")` | `L.Dense(64, kernel_init="glorot_uniform", input_shape=(100,))` |
# | `Activation("relu")` | `L.ReLU()` |
# | `Activation("softmax")` + `loss='categorical_crossentropy'` | no softmax layer: `hp.losses.SoftmaxCrossEntropy()` applies it to the logits, fused and exact (section 2); `model.predict` applies it afterwards |
# | `SGD(lr=0.01, momentum=0.9, nesterov=True)` | `hp.optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True)` |
# | `compile(loss=..., optimizer=...)` (Keras 1's order: optimizer, loss) | `compile(loss=..., optimizer=...)` |
# | `fit(..., nb_epoch=5)` | `fit(..., epochs=5)` |
# | `predict_classes(X_test)` | `predict_classes(x_test)`: the argmax |
#
# The idiomatic handprop version, written directly (class indices as targets: handprop's
# cross-entropy takes them as well as one-hot rows). The slide's program names no seed — Keras 1's
# `Sequential` takes none — but `handprop.keras1.Sequential` is handprop's `Sequential` with its
# default seed, 0. Below, `seed=0` is written out: the same seed draws the same initial weights
# (Glorot uniform, layer by layer in the same order) and the same order of the training digits in
# every epoch. With the same layers, optimizer and batch size, it should be the same network after
# the same training.

# %%
mlp = hp.Sequential(seed=0)
mlp.add(L.Dense(64, input_shape=(100,)))
mlp.add(L.ReLU())
mlp.add(L.Dense(10))  # logits: the loss applies the softmax
mlp.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True),
            metrics=["accuracy"])
mlp_history = mlp.fit(X_train, labels_train, epochs=5, batch_size=32, verbose=2)
test_loss, test_accuracy = mlp.evaluate(X_test, labels_test, batch_size=32)
proba = hp.layers.activations.softmax(mlp.predict(X_test))  # Keras 1's predict_proba
gap = float(np.abs(proba - slide_mlp.predict(X_test)).max())
results.claim("keras1_mlp_same_as_handprop", gap < 1e-5,
              "The slide's program and the idiomatic version compute the same network: their test probabilities "
              "differ by at most {mlp_probability_gap:.1e} (float32 rounding); the idiomatic version's test accuracy "
              "is {mlp_test_accuracy:.1%}.",
              "The slide's program and the idiomatic version differ: test probabilities up to {mlp_probability_gap:.2g} "
              "apart.", mlp_probability_gap=gap, mlp_test_accuracy=test_accuracy)
hp.viz.plot_history(mlp_history, title="The getting-started network on the digits (training only)")

# %% [markdown]
# The slide says that different versions of the libraries (CUDA, cuDNN) may give different results,
# and that they should be the same when networks are compared. Precisely, floating-point sums
# depend on their order, and a library version, a number of threads or a GPU kernel that adds in
# the order its threads finish (some of cuDNN's convolution gradients do, unless a deterministic
# mode is asked for) changes the last bits; training amplifies such differences into visibly
# different networks. Fixing the versions makes a comparison repeatable, not right: a difference
# between two networks means something only if it is larger than what another seed changes (chapter 4
# compares over several seeds). handprop's engine adds in a fixed order, so the same seed, thread
# count and machine give the same bits, run after run; and the two programs above, built through
# different code paths, agree to float32 rounding (the gap printed above).

# %% [markdown]
# `verbose=2` prints one line per epoch; `verbose=1` (the default) draws a progress bar.
#
# ## 2. Keras spellings: `handprop.keras1`, and what handprop's own API accepts and refuses
#
# `handprop.keras1` mirrors the Keras 1 modules the slides import from (`models`, `layers.core`,
# `layers.convolutional`, `layers.pooling`, `layers.advanced_activations`, `optimizers`), and
# accepts the 2016 spellings *there only*:
#
# | Keras 1 (`handprop.keras1`) | handprop | note |
# |---|---|---|
# | `Dense(output_dim=, input_dim=, init=, bias=)` | `Dense(units, input_shape=(d,), kernel_init=, use_bias=)` | |
# | `Convolution2D(20, 5, 5)` | `Conv2D(20, (5, 5))` | in `hp.layers`, a third number is refused (below) |
# | `border_mode='valid'` / `'same'`, `subsample=(2, 2)` | `padding=`, `stride=` | |
# | `dim_ordering='tf'`, `input_shape=(29, 29, 3)` | `input_shape=(3, 29, 29)` | the model transposes (N, H, W, C) batches on the way in |
# | `PReLU()` | `Flatten → PReLU → Reshape` | Keras 1 learns a slope per position, handprop's PReLU per channel |
# | `Dropout(p)` | `Dropout(rate)` | both the drop probability |
# | `compile(optimizer, loss)` | `compile(loss, optimizer)` | |
# | `fit(nb_epoch=)`, `predict_classes`, `predict_proba` | `fit(epochs=)`, `predict_classes`, softmax of `predict` | |
# | `SGD`, `Adam(beta_1, beta_2, epsilon)`, `RMSprop(rho)`, `Adagrad`, `Adadelta` | the same optimizers with `betas=`, `alpha=`, `eps=` | Keras 1's defaults kept |
#
# An argument it does not translate is an error that names it and says what to write instead:

# %%
from handprop.keras1.layers.convolutional import Convolution2D


def refused(make):
    """Run make(); print the error handprop raises."""
    try:
        make()
    except (TypeError, ValueError) as error:
        print(f"{type(error).__name__}: {error}\n")


refused(lambda: Dense(output_dim=64, W_regularizer="l2"))
refused(lambda: Convolution2D(20, 5, 5, input_shape=(29, 29, 3)))
refused(lambda: Convolution2D(20, 5, 5, padding="same"))
refused(lambda: SGD(lr=0.01, decay=1e-6))
refused(lambda: slide_mlp.fit(X_train, Y_train, epochs=5))

# %% [markdown]
# The slide says to add weight decay to overcome plateaus. Precisely, weight decay is a
# **regularizer**: it pulls every weight towards zero to reduce overfitting (chapter 4); it does not
# help the optimizer across a flat stretch of the loss, and where the data term's gradient is small
# it mostly shrinks the weights. What helps on a plateau acts on the step: momentum, which keeps
# moving where the gradient is small and consistent; a learning-rate schedule, larger steps first
# and smaller ones later (chapter 2); and normalization of the inputs and activations (batch
# normalization, chapter 4), which keeps the gradients of all layers at a usable scale. Two spellings
# above invite the mix-up: Keras 1's `W_regularizer` is the weight penalty (handprop: the optimizer's
# `weight_decay=`), while Keras 1's `SGD(decay=...)` is **not** weight decay but a learning-rate
# decay, $\text{lr} / (1 + \text{decay} \cdot \text{iterations})$ (handprop: a schedule).

# %% [markdown]
# handprop's own API takes some Keras spellings where they mean the same thing:
#
# | Keras | handprop | note |
# |---|---|---|
# | `Activation("relu")` | `Activation("relu")` → `ReLU()` | one class per activation |
# | `Dense(64, activation="relu")` | the same | the activation runs inside the layer |
# | `input_shape=(...)` on the first layer | the same | builds the model at once |
# | `Convolution2D`, `MaxPooling2D`, `AveragePooling2D` | the same names | aliases of `Conv2D`, `MaxPool2D`, `AvgPool2D` |
# | `fit(..., nb_epoch=5)` | accepted, with a `DeprecationWarning` | write `epochs=5` |
# | `SGD(lr=...)`, `learning_rate=` | both | |
# | `loss="categorical_crossentropy"`, `"mse"`, `optimizer="adam"` | names accepted | |

# %%
keras_style = hp.Sequential()
keras_style.add(L.Convolution2D(8, (3, 3), activation="relu", input_shape=(1, 8, 8)))
keras_style.add(L.MaxPooling2D(pool_size=(2, 2)))
keras_style.add(L.Flatten())
keras_style.add(L.Dense(10))
keras_style.compile(loss="categorical_crossentropy", optimizer="adam", metrics="accuracy")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    keras_style.fit(digits_train, labels_train, nb_epoch=2, verbose=0)
print("nb_epoch:", [f"{w.category.__name__}: {w.message}" for w in caught])
print(keras_style)

# %% [markdown]
# Three things handprop's own API **refuses**, each because the Keras habit would silently
# compute something else there (`handprop.keras1` translates the first two, and takes the third
# into the loss):
#
# 1. **`Conv2D(20, 5, 5)`**. In Keras 1 that is 20 filters of 5×5. In handprop (as in Keras 2 and
#    PyTorch) the third positional argument would be the stride: the code would run, silently, with
#    a stride of 5. So the arguments after the kernel size are keyword-only, and the error says what
#    to write.
# 2. **Channels-last images.** Keras with TensorFlow stores images as (N, H, W, C) — the slide's
#    ConvNet does, with `dim_ordering='tf'`; handprop, like PyTorch, as (N, C, H, W). A
#    (N, 29, 29, 3) batch read as channels-first is 29 "channels" of 29×3 pixels, and it would
#    train, badly, without any error. The first convolution refuses input that looks channels-last
#    and says how to transpose it; `handprop.keras1` transposes it because `dim_ordering='tf'`
#    declares it.
# 3. **A softmax before `categorical_crossentropy`.** handprop's cross-entropy takes **logits** and
#    applies the softmax itself (as PyTorch's `CrossEntropyLoss`): fused, it is exact even for huge
#    scores. A `Softmax` layer in front would apply it twice, and learning would crawl. `compile`
#    refuses that combination.

# %%
refused(lambda: L.Conv2D(20, 5, 5))
refused(lambda: hp.Sequential([L.Conv2D(20, 5, input_shape=(29, 29, 3))]))
refused(lambda: hp.Sequential([L.Conv2D(20, 5)]).predict(np.zeros((2, 29, 29, 3))))
refused(lambda: hp.Sequential([L.Dense(10, input_shape=(64,)), L.Activation("softmax")]).compile(
    loss="categorical_crossentropy", optimizer="sgd"))

# %% [markdown]
# ## 3. The tutorial's ConvNet
#
# The slides' second program: a network that classifies the centre pixel of a 29×29 RGB patch
# into one of 135 classes, on the TensorFlow backend (channels last). The 135 outputs fit the
# slides' whole-brain segmentation example (MICCAI 2012 multi-label challenge): 134 brain regions
# plus one class for the background. Quoted exactly as written:
#
# ```python
# model = Sequential()
# model.add(Convolution2D(20, 5,5, dim_ordering='tf', border_mode='valid',
#                       input_shape=(29,29,3)))
#
# model.add(PReLU())
# model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
# model.add(Convolution2D(50, 3,3, dim_ordering='tf', border_mode='valid'))
# model.add(PReLU())
# model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
# model.add(Flatten())
# model.add(Dense(2000))
# model.add(PReLU())
# model.add(Dense(135))
# model.add(Activation('softmax'))
# ```
#
# *Source:* Išgum, de Vos, Lessmann, Wolterink, Nielsen, Pai, "A tutorial on Deep Learning in
# Medical Image Analysis", part 5 "Getting started" (A. Pai, Y.-C. Teng, J. Blair, M. Nielsen),
# the ConvNet code example. Licensed [CC BY-NC-SA 4.0](http://creativecommons.org/licenses/by-nc-sa/4.0/);
# quoted unchanged.
#
# The slide has no imports; the first four lines below import its names from Keras 1's modules,
# as `from handprop.keras1.X import Y`. The rest is the slide:

# %%
from handprop.keras1.models import Sequential
from handprop.keras1.layers.convolutional import Convolution2D, MaxPooling2D
from handprop.keras1.layers.advanced_activations import PReLU
from handprop.keras1.layers.core import Flatten, Dense, Activation
model = Sequential()
model.add(Convolution2D(20, 5,5, dim_ordering='tf', border_mode='valid',
                      input_shape=(29,29,3)))

model.add(PReLU())
model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
model.add(Convolution2D(50, 3,3, dim_ordering='tf', border_mode='valid'))
model.add(PReLU())
model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
model.add(Flatten())
model.add(Dense(2000))
model.add(PReLU())
model.add(Dense(135))
model.add(Activation('softmax'))

# %% [markdown]
# The slide calls this network `model` too, which replaces the first program's `model`; from here
# on it is `slide_convnet` (and the first program stays `slide_mlp`), so that every cell of the
# chapter can be run again in any order. `summary` lists what Keras 1 would: shapes
# channels-last, one row per `add`:

# %%
slide_convnet = model  # the ConvNet slide's `model`
slide_convnet.summary();

# %% [markdown]
# The sizes: a valid 5×5 convolution takes 29 to 25, pooling to 12, the 3×3 convolution to 10,
# pooling to 5, so `Flatten` hands $5 \cdot 5 \cdot 50 = 1{,}250$ numbers to the first dense
# layer, which holds 2.5 of the 2.8 million parameters. Keras 1's `PReLU()` learns one slope per
# *position* (25 × 25 × 20 = 12,500 after the first convolution), handprop's `PReLU` one per
# channel (PyTorch's `PReLU(num_parameters=C)`, Keras' `shared_axes=[1, 2]`): `handprop.keras1`
# reproduces Keras 1's count with handprop's layer on the flattened map (a slope per feature is a
# slope per position). The count worked out by hand, layer by layer:

# %%
keras1_count = ((5 * 5 * 3 + 1) * 20 + 25 * 25 * 20       # conv 5x5x3 -> 20 (+ bias), PReLU per position
                + (3 * 3 * 20 + 1) * 50 + 10 * 10 * 50    # conv 3x3x20 -> 50, PReLU
                + (1250 + 1) * 2000 + 2000                # Dense(2000), PReLU
                + (2000 + 1) * 135)                       # Dense(135)
per_channel_count = keras1_count - (25 * 25 * 20 + 10 * 10 * 50) + (20 + 50)
slide_shapes = slide_convnet.keras1_output_shapes()
results.claim("convnet_count_as_keras1", slide_convnet.count_params() == keras1_count,
              "The slide's ConvNet has {convnet_params_keras1:,} parameters in `handprop.keras1`, Keras 1's count "
              "by hand; the first convolution's output is {convnet_first_shape}, in the slide's channels-last order.",
              "The slide's ConvNet has {convnet_params_keras1:,} parameters in `handprop.keras1`, not Keras 1's "
              "{convnet_params_by_hand:,}.", convnet_params_keras1=slide_convnet.count_params(),
              convnet_params_by_hand=keras1_count, convnet_first_shape=slide_shapes[0])

# %% [markdown]
# It takes channels-last batches, as the slide's TensorFlow backend did. One training step on 32
# random 29×29×3 patches with random classes among the 135, with the first program's compile
# settings (the model transposes each batch to handprop's (N, C, H, W) on the way in):

# %%
slide_convnet.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True))
x_channels_last = np.random.default_rng(0).standard_normal((32, 29, 29, 3)).astype(np.float32)
y_onehot = np.eye(135, dtype=np.float32)[np.random.default_rng(1).integers(0, 135, 32)]
print("loss before the step:", round(slide_convnet.train_on_batch(x_channels_last, y_onehot), 4))
print("probabilities:", slide_convnet.predict(x_channels_last).shape,
      " classes:", slide_convnet.predict_classes(x_channels_last)[:8])

# %% [markdown]
# The idiomatic handprop version, line by line: the kernel size as one argument, channels first,
# PReLU per channel, no final softmax (the loss applies it):

# %%
convnet = hp.Sequential()
convnet.add(L.Conv2D(20, (5, 5), input_shape=(3, 29, 29)))  # Convolution2D(20, 5,5, dim_ordering='tf', ...)
convnet.add(L.PReLU())
convnet.add(L.MaxPool2D(2))
convnet.add(L.Conv2D(50, (3, 3)))                            # Convolution2D(50, 3,3, ...)
convnet.add(L.PReLU())
convnet.add(L.MaxPool2D(2))
convnet.add(L.Flatten())
convnet.add(L.Dense(2000))
convnet.add(L.PReLU())
convnet.add(L.Dense(135))                                    # no Activation('softmax')
convnet.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True))
convnet.summary();

# %%
same = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=135)
results.say("With a slope per channel the network has {convnet_params_per_channel:,} parameters "
            "({convnet_fewer_params:,} fewer than Keras 1's {convnet_params_by_hand:,}: its per-position slopes); "
            "`hp.architectures.patch_cnn(29, dense_units=2000, n_classes=135)` builds the same network in one call "
            "({patch_cnn_params:,}).", convnet_params_per_channel=convnet.count_params(),
            convnet_fewer_params=keras1_count - convnet.count_params(), convnet_params_by_hand=keras1_count,
            patch_cnn_params=same.count_params())
x = np.random.default_rng(0).standard_normal((32, 3, 29, 29)).astype(np.float32)
y = np.random.default_rng(1).integers(0, 135, 32)
convnet.train_on_batch(x, y)  # the first step also compiles the Numba kernels: time the next ones
start = time.perf_counter()
steps = 3 if QUICK else 10
for _ in range(steps):
    convnet.train_on_batch(x, y)
print(f"one training step on a batch of 32 patches: {(time.perf_counter() - start) / steps * 1000:.0f} ms")

# %% [markdown]
# The slide says that Torch is the fastest framework and TensorFlow the slowest. Precisely, that
# was the outcome of the 2016–2017 benchmarks it cites, for their versions, hardware, networks and
# batch sizes; frameworks change from one release to the next (today most of them call the same
# GPU libraries, cuDNN and cuBLAS, for the heavy work), and the ranking changes with the network and
# the batch size. A ranking is not a property of a framework: time the training step of *your*
# network on *your* machine, as the cell above does. handprop runs on the CPU (optionally on a GPU
# through CuPy) and is written to be read, not to win benchmarks; its time per step is printed
# above so that the chapters' run times can be judged.

# %% [markdown]
# ## 4. The ConvNet as a vessel classifier: training, validation and test patients
#
# The 135 classes of the tutorial's task are not ours; the same network with **2** outputs is a
# vessel classifier. We train it on 29×29 patches of synthetic retinas (chapter 1) with the
# tutorial's optimizer. The patients are split three ways: the network learns on the
# **training** patients, `fit` monitors it on the **validation** patients, and the **test**
# patients are used once, at the end, for the number we report (chapter 4 says why).

# %%
data = hp.data.synthetic_retina(8 if QUICK else 12, size=(256, 256), seed=0)
train_ids, val_ids, test_ids = hp.data.split_patients(data, (0.6, 0.2, 0.2), seed=0)
standardizer = hp.data.Standardizer().fit(data.images[train_ids], data.fov[train_ids])


def patches(ids, per_image, seed):
    x, y = hp.data.extract_patches(data.images[ids], data.vessels[ids], data.fov[ids], 29, per_image,
                                   balance=0.5, seed=seed)
    return standardizer.transform(x), y


x_train29, y_train29 = patches(train_ids, 150 if QUICK else 400, seed=0)
x_val29, y_val29 = patches(val_ids, 300, seed=1)
x_test29, y_test29 = patches(test_ids, 300, seed=2)
print(f"patients: {len(train_ids)} training, {len(val_ids)} validation, {len(test_ids)} test")
vessel_net = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=2)
vessel_net.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True),
                   metrics=["accuracy"])


class EpochEndAccuracy(hp.callbacks.Callback):
    """The accuracy on some patches with the weights at the end of each epoch (no update; for the box below)."""

    def __init__(self, x, y):
        self.x, self.y, self.accuracy = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.accuracy.append(self.model.evaluate(self.x, self.y)[1])


train_at_epoch_end = EpochEndAccuracy(x_train29, y_train29)
start = time.perf_counter()
vessel_history = vessel_net.fit(x_train29, y_train29, epochs=2 if QUICK else 6, batch_size=32,
                                validation_data=(x_val29, y_val29), callbacks=[train_at_epoch_end], verbose=2)
print(f"{len(x_train29)} patches, {time.perf_counter() - start:.0f} s")

# %% tags=["thumbnail"]
hp.viz.plot_history(vessel_history,
                    title="The tutorial's ConvNet with 2 outputs, on retina patches (validation patients)")

# %% [markdown]
# The slide says not to worry if the validation accuracy is higher than the training accuracy at
# first: it will even out. Precisely, the two figures are not measured alike. The training accuracy
# that `fit` reports is the **mean over the epoch's batches**, each measured before its update,
# while the net was still improving; the validation accuracy is measured once, after the epoch, with
# the epoch's final weights. And a network with dropout is measured on training batches *with*
# units dropped, on validation data with all of them. (This ConvNet has no dropout: in its first
# epoch, below, the gap is the averaging, plus the fact that the validation patients are other
# retinas; a callback measured the training patches after each epoch, as the validation patches
# are.) The gap does not "even out" by itself either: as the net fits its training patches,
# the training accuracy usually passes the validation accuracy and stays ahead (the generalization
# gap of chapter 4); a validation accuracy that stays higher deserves a look at the split.

# %%
epoch_train29, epoch_val29 = vessel_history.history["accuracy"], vessel_history.history["val_accuracy"]
results.say("Epoch 1: the reported training accuracy (the mean over the epoch's batches) is {vessel_epoch1_train:.1%}, "
            "the validation accuracy {vessel_epoch1_val:.1%}; the training patches measured like the validation "
            "patches, after the epoch with its final weights, give {vessel_epoch1_train_end:.1%}. Last epoch: "
            "{vessel_last_train:.1%} reported for training, {vessel_last_train_end:.1%} measured after the epoch, "
            "{vessel_last_val:.1%} for validation.",
            vessel_epoch1_train=epoch_train29[0], vessel_epoch1_val=epoch_val29[0],
            vessel_epoch1_train_end=train_at_epoch_end.accuracy[0], vessel_last_train=epoch_train29[-1],
            vessel_last_train_end=train_at_epoch_end.accuracy[-1], vessel_last_val=epoch_val29[-1])

# %% [markdown]
# Training is over: the test patients, once.

# %%
test_loss29, test_accuracy29 = vessel_net.evaluate(x_test29, y_test29)
val_accuracy29 = vessel_history.history["val_accuracy"][-1]
results.claim("vessel_convnet_above_chance", test_accuracy29 > 0.5,
              "On the {n_test_patients} test patients the vessel ConvNet classifies {vessel_test_accuracy:.1%} of the "
              "balanced test patches right (chance: 50%; last validation accuracy {vessel_val_accuracy:.1%}).",
              "On the {n_test_patients} test patients the vessel ConvNet is no better than chance: "
              "{vessel_test_accuracy:.1%} of the balanced test patches (last validation accuracy "
              "{vessel_val_accuracy:.1%}).",
              n_test_patients=len(test_ids), vessel_test_accuracy=test_accuracy29, vessel_val_accuracy=val_accuracy29)

# %% [markdown]
# The validation and the test accuracy need not agree: both are estimates from a handful of
# retinas, so their difference is first of all a question of how much one patient differs from
# another. The same final predictions, patient by patient (each gave the same number of patches):

# %%
def accuracy_by_patient(x, y, n_patients):
    """The accuracy on each patient's patches (extract_patches keeps them in patient order)."""
    right = vessel_net.predict(x).argmax(axis=1) == y
    return right.reshape(n_patients, -1).mean(axis=1)


def patients(n):
    return f"{n} patient{'s' if n != 1 else ''}"


val_by_patient29 = accuracy_by_patient(x_val29, y_val29, len(val_ids))
test_by_patient29 = accuracy_by_patient(x_test29, y_test29, len(test_ids))
held_out29 = np.concatenate([val_by_patient29, test_by_patient29])
patient_spread29 = 100 * float(held_out29.max() - held_out29.min())  # points, between single patients
gap29 = 100 * abs(val_accuracy29 - test_accuracy29)
sampling29 = 100 * float(np.sqrt(test_accuracy29 * (1 - test_accuracy29) / len(y_test29)))  # binomial
if gap29 <= patient_spread29:
    verdict29 = (f"A gap of this size is what another draw of patients gives: with {patients(len(test_ids))}, "
                 "the test accuracy says how the network does on these retinas, and a general claim needs more "
                 "patients.")
else:
    verdict29 = ("The gap is wider than the spread between single patients: more than the luck of the draw, "
                 "worth a look at what sets the test patients apart.")
results.say("The test accuracy ({vessel_test_accuracy:.1%}; {test_patients}, {n_test_patches} patches) is "
            "{val_test_gap:.1f} points {test_side} the validation accuracy ({vessel_val_accuracy:.1%}; "
            "{val_patients}). Patch sampling alone moves the test figure by about {test_sampling_se:.1f} points "
            "(one standard error); {patients_move}: one by one, the validation patients score {val_by_patient} "
            "and the test patients {test_by_patient}, a spread of {patient_spread:.1f} points. {gap_verdict}",
            vessel_test_accuracy=test_accuracy29, test_patients=patients(len(test_ids)),
            n_test_patches=len(y_test29), val_test_gap=gap29,
            test_side="below" if test_accuracy29 < val_accuracy29 else "above",
            vessel_val_accuracy=val_accuracy29, val_patients=patients(len(val_ids)), test_sampling_se=sampling29,
            patients_move=("the patients move it more" if patient_spread29 > 2 * sampling29 else
                           "the patients differ less than that"),
            val_by_patient=", ".join(f"{a:.1%}" for a in val_by_patient29),
            test_by_patient=", ".join(f"{a:.1%}" for a in test_by_patient29),
            patient_spread=patient_spread29, gap_verdict=verdict29)

# %% [markdown]
# ## 5. Saving, loading, and PyTorch
#
# `model.save(path)` writes one [safetensors](https://huggingface.co/docs/safetensors) file: the
# architecture (as JSON), the weights, the layers' state, the optimizer's state and the random
# generators, so that `hp.load_model(path)` gives back a model that predicts the same and resumes
# training exactly where it stopped. (No pickle: loading a file never runs code from it.)
# `save_weights` / `load_weights` store only the weights, for a model you build in code.

# %%
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "vessel_net.safetensors"
    vessel_net.save(path)
    restored = hp.load_model(path)
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
    same_predictions = np.array_equal(restored.predict(x_val29), vessel_net.predict(x_val29))
    print("restored optimizer:", restored.optimizer)

    vessel_net.save_weights(Path(folder) / "weights.safetensors")
    fresh = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=2, seed=7)  # other initial weights
    fresh.load_weights(Path(folder) / "weights.safetensors")
    same_from_weights = np.array_equal(fresh.predict(x_val29), vessel_net.predict(x_val29))
results.claim("save_load_same_predictions", same_predictions and same_from_weights,
              "The loaded model, and a fresh one given the saved weights, predict the validation patches bit for bit "
              "as the trained model.",
              "The loaded model does not predict exactly as the trained model (whole model: {loaded_same}, weights "
              "only: {weights_same}).", loaded_same=same_predictions, weights_same=same_from_weights)

# %% [markdown]
# When a project outgrows handprop, `hp.export.to_torch(model)` returns the same network as a
# PyTorch module with the same weights (handprop does not need PyTorch; this cell is skipped
# without it):

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: pip install torch, then run this cell again")

if torch is not None:
    net = hp.export.to_torch(vessel_net)
    print(net)
    with torch.no_grad():
        torch_out = net(torch.from_numpy(x_val29[:64])).numpy()
    print("max |torch - handprop| on 64 validation patches:",
          float(np.abs(torch_out - vessel_net.predict(x_val29[:64])).max()))

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checker compares your answer with handprop and says what differs.
#
# ### Exercise 1 — counting parameters
#
# Write `conv_params(in_channels, filters, kernel_size)` (a `Conv2D` with a `kernel_size` ×
# `kernel_size` kernel and a bias) and `dense_params(in_features, units)` (a `Dense` layer with a
# bias), each returning the number of parameters. The checker compares them with the layers' own
# `count_params()`, the tutorial's four layers included.

# %% tags=["exercise"]
def conv_params(in_channels, filters, kernel_size):
    # your answer
    raise NotImplementedError


def dense_params(in_features, units):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def conv_params(in_channels, filters, kernel_size):
    return filters * in_channels * kernel_size * kernel_size + filters  # a kernel per (filter, channel), a bias


def dense_params(in_features, units):
    return in_features * units + units


# %% tags=["check"]
hp.exercises.check_parameter_counts(conv_params, dense_params)

# %% [markdown]
# ### Exercise 2 — translate Keras code
#
# A vessel classifier on 25×25 RGB patches, written for Keras 1 (Theano channel order):

# %%
print(hp.exercises.getting_started.KERAS_EXERCISE)

# %% [markdown]
# Write `build_vessel_convnet()` that builds and compiles the same network with handprop and returns
# it. The checker compares it, layer by layer, with the intended network and its compile settings.

# %% tags=["exercise"]
def build_vessel_convnet():
    # your answer: model = hp.Sequential(); model.add(...); ...; model.compile(...); return model
    raise NotImplementedError


# %% tags=["solution"]
def build_vessel_convnet():
    model = hp.Sequential()
    model.add(L.Convolution2D(32, (3, 3), input_shape=(3, 25, 25)))  # channels first; the kernel as one argument
    model.add(L.PReLU())
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Convolution2D(64, (3, 3)))
    model.add(L.PReLU())
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Flatten())
    model.add(L.Dense(256))
    model.add(L.PReLU())
    model.add(L.Dropout(0.5))  # the same meaning: the probability of dropping
    model.add(L.Dense(2))      # no softmax: the loss applies it
    model.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True))
    return model


# %% tags=["check"]
hp.exercises.check_keras_translation(build_vessel_convnet)
