# %% [markdown]
# # Chapter 5 — Getting started: the tutorial's Keras code in handprop
#
# The tutorial's code is written for Keras (its 2016 version, Keras 1, with the Theano backend).
# handprop follows the same rhythm — build a `Sequential` model layer by layer, `compile` it with
# a loss and an optimizer, `fit`, `evaluate`, `predict` — so the tutorial's code translates almost
# line by line. This chapter puts the two side by side:
#
# 1. the getting-started network: `Sequential`, `Dense`, `Activation`, `SGD(lr=0.01, momentum=0.9,
#    nesterov=True)`, `compile` / `fit` / `evaluate` / `predict_classes`;
# 2. the Keras spellings handprop accepts, and the three things it **refuses** (and why);
# 3. the tutorial's ConvNet on 29×29×3 patches with 135 outputs (2,784,775 parameters), and the
#    same network trained on retina patches;
# 4. saving and loading a model, and handing it over to PyTorch.
#
# Keras itself is not needed: its code is shown in grey boxes, handprop's runs in the cells.
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
# ## 1. The getting-started network
#
# The tutorial's first example (Keras 1):
#
# ```python
# from keras.models import Sequential
# from keras.layers import Dense, Activation
# from keras.optimizers import SGD
#
# model = Sequential()
# model.add(Dense(output_dim=64, input_dim=100))
# model.add(Activation("relu"))
# model.add(Dense(output_dim=10))
# model.add(Activation("softmax"))
# model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True),
#               metrics=['accuracy'])
# model.fit(X_train, Y_train, nb_epoch=5, batch_size=32)
# loss_and_metrics = model.evaluate(X_test, Y_test, batch_size=32)
# classes = model.predict_classes(X_test, batch_size=32)
# proba = model.predict_proba(X_test, batch_size=32)
# ```
#
# Our data: the handwritten digits that ship with handprop (8×8 images as 64 numbers, 10 classes),
# so the first layer reads 64 inputs instead of 100. In handprop, line by line:

# %%
(x_train, y_train), (x_test, y_test) = hp.data.load_digits()

model = hp.Sequential()
model.add(L.Dense(64, input_shape=(64,)))   # Keras 1: Dense(output_dim=64, input_dim=100)
model.add(L.Activation("relu"))              # returns hp.layers.ReLU()
model.add(L.Dense(10))                       # Dense(output_dim=10)
# no Activation("softmax"): the loss applies it (section 2 says why)
model.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True),
              metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=5, batch_size=32, verbose=2)  # Keras 1: nb_epoch=5

# %% [markdown]
# `verbose=2` prints one line per epoch; `verbose=1` (the default) draws a progress bar, a widget
# in Jupyter. The targets may be class indices, as here, or one-hot rows like Keras' `Y_train`
# (`np.eye(10)[y_train]`): `categorical_crossentropy` is handprop's `SoftmaxCrossEntropy`, which
# takes both.

# %%
loss_and_metrics = model.evaluate(x_test, y_test, batch_size=32)
classes = model.predict_classes(x_test, batch_size=32)
proba = hp.layers.activations.softmax(model.predict(x_test, batch_size=32))  # Keras 1's predict_proba
print("evaluate -> [loss, accuracy]:", np.round(loss_and_metrics, 4))
print("predict_classes:", classes[:10], " true:", y_test[:10])
print("probabilities of the first test image:", proba[0].round(3))
print("one-hot targets give the same loss:", round(model.evaluate(x_test, np.eye(10)[y_test])[0], 6))
hp.viz.plot_history(history)

# %% [markdown]
# ## 2. Keras spellings handprop accepts — and what it refuses
#
# handprop accepts the tutorial's spellings where they mean the same thing:
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
    keras_style.fit(x_train.reshape(-1, 1, 8, 8), y_train, nb_epoch=2, verbose=0)
print("nb_epoch:", [f"{w.category.__name__}: {w.message}" for w in caught])
print(keras_style)

# %% [markdown]
# Three things handprop **refuses**, each because the Keras habit would silently compute
# something else here:
#
# 1. **`Conv2D(20, 5, 5)`**. In Keras 1 that is 20 filters of 5×5. In handprop (as in Keras 2 and
#    PyTorch) the third positional argument would be the stride: the code would run, silently, with
#    a stride of 5. So the arguments after the kernel size are keyword-only, and the error says what
#    to write.
# 2. **Channels-last images.** Keras with TensorFlow stores images as (N, H, W, C); handprop, like
#    PyTorch and the tutorial's Theano code, as (N, C, H, W). A (N, 29, 29, 3) batch read as
#    channels-first is 29 "channels" of 29×3 pixels, and it would train, badly, without any error.
#    The first convolution refuses input that looks channels-last and says how to transpose it.
# 3. **A softmax before `categorical_crossentropy`.** handprop's cross-entropy takes **logits** and
#    applies the softmax itself (as PyTorch's `CrossEntropyLoss`): fused, it is exact even for huge
#    scores. A `Softmax` layer in front would apply it twice, and learning would crawl. `compile`
#    refuses that combination.

# %%
def refused(make):
    """Run make(); print the error handprop raises."""
    try:
        make()
    except (TypeError, ValueError) as error:
        print(f"{type(error).__name__}: {error}\n")


refused(lambda: L.Conv2D(20, 5, 5))
refused(lambda: hp.Sequential([L.Conv2D(20, 5, input_shape=(29, 29, 3))]))
refused(lambda: hp.Sequential([L.Conv2D(20, 5)]).predict(np.zeros((2, 29, 29, 3))))
refused(lambda: hp.Sequential([L.Dense(10, input_shape=(64,)), L.Activation("softmax")]).compile(
    loss="categorical_crossentropy", optimizer="sgd"))

# %% [markdown]
# ## 3. The tutorial's ConvNet
#
# The network of the tutorial classifies the centre pixel of a 29×29 patch with three colour
# channels into one of 135 classes (Keras 1, Theano channel order):
#
# ```python
# model = Sequential()
# model.add(Convolution2D(20, 5, 5, input_shape=(3, 29, 29)))
# model.add(PReLU())
# model.add(MaxPooling2D(pool_size=(2, 2)))
# model.add(Convolution2D(50, 3, 3))
# model.add(PReLU())
# model.add(MaxPooling2D(pool_size=(2, 2)))
# model.add(Flatten())
# model.add(Dense(2000))
# model.add(PReLU())
# model.add(Dense(135))
# model.add(Activation('softmax'))
# sgd = SGD(lr=0.01, momentum=0.9, nesterov=True)
# model.compile(loss='categorical_crossentropy', optimizer=sgd)
# ```
#
# In handprop, line by line (the two changes: the kernel size as one argument, no final softmax):

# %%
convnet = hp.Sequential()
convnet.add(L.Convolution2D(20, (5, 5), input_shape=(3, 29, 29)))  # Keras 1: Convolution2D(20, 5, 5, ...)
convnet.add(L.PReLU())
convnet.add(L.MaxPooling2D(pool_size=(2, 2)))
convnet.add(L.Convolution2D(50, (3, 3)))                            # Convolution2D(50, 3, 3)
convnet.add(L.PReLU())
convnet.add(L.MaxPooling2D(pool_size=(2, 2)))
convnet.add(L.Flatten())
convnet.add(L.Dense(2000))
convnet.add(L.PReLU())
convnet.add(L.Dense(135))                                           # no Activation('softmax')
sgd = SGD(lr=0.01, momentum=0.9, nesterov=True)
convnet.compile(loss="categorical_crossentropy", optimizer=sgd)
convnet.summary();

# %% [markdown]
# The sizes: a valid 5×5 convolution takes 29 to 25, pooling to 12, the 3×3 convolution to 10,
# pooling to 5, so `Flatten` hands $50 \cdot 5 \cdot 5 = 1{,}250$ numbers to the first dense layer,
# which holds 2.5 of the 2.8 million parameters. (handprop's `PReLU` learns one slope per channel,
# as PyTorch's `PReLU(num_parameters=C)`; Keras' `PReLU` learns one per *position* unless its
# `shared_axes` share them across the image, 12,500 slopes after the first convolution alone, so a
# Keras summary of this code may count more.) `hp.architectures.patch_cnn` builds the same network
# in one call:

# %%
same = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=135)
print(f"patch_cnn: {same.count_params():,} parameters; line by line: {convnet.count_params():,}")
x = np.random.default_rng(0).standard_normal((32, 3, 29, 29)).astype(np.float32)
y = np.random.default_rng(1).integers(0, 135, 32)
convnet.train_on_batch(x, y)  # the first step also compiles the Numba kernels: time the next ones
start = time.perf_counter()
steps = 3 if QUICK else 10
for _ in range(steps):
    convnet.train_on_batch(x, y)
print(f"one training step on a batch of 32 patches: {(time.perf_counter() - start) / steps * 1000:.0f} ms")

# %% [markdown]
# The 135 classes of the tutorial's task are not ours; the same network with **2** outputs is a
# vessel classifier. We train it on 29×29 patches of synthetic retinas (chapter 1), the test
# patches coming from other patients, with the tutorial's optimizer:

# %%
data = hp.data.synthetic_retina(6 if QUICK else 10, size=(256, 256), seed=0)
train_ids, test_ids = hp.data.split_patients(data, (0.7, 0.3), seed=0)
standardizer = hp.data.Standardizer().fit(data.images[train_ids], data.fov[train_ids])


def patches(ids, per_image, seed):
    x, y = hp.data.extract_patches(data.images[ids], data.vessels[ids], data.fov[ids], 29, per_image,
                                   balance=0.5, seed=seed)
    return standardizer.transform(x), y


x_train29, y_train29 = patches(train_ids, 150 if QUICK else 400, seed=0)
x_test29, y_test29 = patches(test_ids, 300, seed=1)
vessel_net = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=2)
vessel_net.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True),
                   metrics=["accuracy"])
start = time.perf_counter()
history = vessel_net.fit(x_train29, y_train29, epochs=2 if QUICK else 6, batch_size=32,
                         validation_data=(x_test29, y_test29), verbose=2)
print(f"{len(x_train29)} patches, {time.perf_counter() - start:.0f} s")
print("evaluate on the test patients -> [loss, accuracy]:", np.round(vessel_net.evaluate(x_test29, y_test29), 3))

# %% tags=["thumbnail"]
hp.viz.plot_history(history, title="The tutorial's ConvNet with 2 outputs, on retina patches (validation: test patients)")

# %% [markdown]
# ## 4. Saving, loading, and PyTorch
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
    print("same predictions:", np.array_equal(restored.predict(x_test29), vessel_net.predict(x_test29)))
    print("restored optimizer:", restored.optimizer)

    vessel_net.save_weights(Path(folder) / "weights.safetensors")
    fresh = hp.architectures.patch_cnn(29, dense_units=2000, n_classes=2, seed=7)  # other initial weights
    fresh.load_weights(Path(folder) / "weights.safetensors")
    print("weights only, into a model built in code:", np.array_equal(fresh.predict(x_test29),
                                                                       vessel_net.predict(x_test29)))

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
        torch_out = net(torch.from_numpy(x_test29[:64])).numpy()
    print("max |torch - handprop| on 64 patches:", float(np.abs(torch_out - vessel_net.predict(x_test29[:64])).max()))

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
