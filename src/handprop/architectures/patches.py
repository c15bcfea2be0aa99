"""Patch classifiers: decide about the centre pixel (voxel) of a patch.

* :func:`patch_cnn` -- the tutorial's ConvNet: Conv -> PReLU -> pool blocks, Flatten, Dense.
* :func:`multiscale_patch_net` -- one such branch per patch size around the same pixel, merged.
* :func:`triplanar_net` -- one branch per orthogonal plane through a voxel of a 3-D volume.
* :func:`cnn3d` -- the same blocks with Conv3D / MaxPool3D on the cube around the voxel.

They share one helper, :func:`feature_layers`, the convolutional part of a branch, which checks
the sizes as it goes so that an impossible combination (a 5 x 5 kernel on a 3 x 3 map) is
reported with the sizes, before any training.
"""

from __future__ import annotations

import numpy as np

from ..graph import Input, Model
from ..kernels.geometry import output_size
from ..layers import Concatenate, Conv2D, Conv3D, Dense, Dropout, Flatten, MaxPool2D, MaxPool3D
from ..layers.activations import get as activation_layer
from ..model import Sequential


def feature_layers(patch_size, filters, kernel_sizes, pool=2, activation="prelu", padding="valid", dims=2,
                   where="patch_cnn"):
    """The convolutional part of a patch classifier, as a list of layers ending with Flatten.

    For each ``(f, k)`` in ``zip(filters, kernel_sizes)``: ``Conv(f, k, padding)`` -> activation ->
    ``MaxPool(pool)``, the pooling left out once the map is smaller than the pool. ``dims=3`` uses
    Conv3D / MaxPool3D (cubes). Raises a ValueError naming ``where`` and the map size when a
    kernel does not fit.
    """
    if len(filters) != len(kernel_sizes):
        raise ValueError(f"{where}: filters {tuple(filters)} and kernel_sizes {tuple(kernel_sizes)} differ in length")
    conv, pooling = (Conv2D, MaxPool2D) if dims == 2 else (Conv3D, MaxPool3D)
    size, layers = int(patch_size), []
    for f, k in zip(filters, kernel_sizes):
        new = size if padding == "same" else output_size(size, k, 1, 0)
        if new < 1:
            raise ValueError(f"{where}: a {k}-wide kernel does not fit the {size}-wide map of a {patch_size}-wide "
                             f"patch; use smaller kernel_sizes, fewer blocks, or padding='same'")
        size = new
        layers += [conv(f, k, padding=padding), activation_layer(activation)]
        if size >= pool > 1:
            layers.append(pooling(pool))
            size //= pool
    return layers + [Flatten()]


def _head(dense_units, n_classes, activation, dropout):
    """Dense -> activation -> (Dropout) -> Dense(n_classes): logits."""
    return [Dense(dense_units), activation_layer(activation), *([Dropout(dropout)] if dropout else []),
            Dense(n_classes)]


def _chain(layers, node):
    for layer in layers:
        node = layer(node)
    return node


def patch_cnn(patch_size, in_channels=3, n_classes=2, filters=(20, 50), kernel_sizes=(5, 3), pool=2,
              dense_units=256, activation="prelu", dropout=0.0, padding="valid", seed=0):
    """The tutorial's ConvNet: classify the centre pixel of a ``patch_size`` square patch.

    ``Conv(20, 5x5) -> PReLU -> MaxPool 2 -> Conv(50, 3x3) -> PReLU -> MaxPool 2 -> Flatten ->
    Dense(dense_units) -> PReLU -> (Dropout) -> Dense(n_classes)`` by default (valid padding:
    29 -> 25 -> 12 -> 10 -> 5). ``patch_cnn(29, dense_units=2000, n_classes=135)`` is exactly the
    tutorial's network (2,784,775 parameters). Small patches need smaller kernels or
    ``padding="same"`` (a 5 x 5 patch: ``kernel_sizes=(3, 3), padding="same"``); a pooling is left
    out once the map is smaller than the pool.

    Returns a ``Sequential`` on (in_channels, patch_size, patch_size) producing logits
    (N, n_classes): pair it with ``SoftmaxCrossEntropy``.
    """
    layers = feature_layers(patch_size, filters, kernel_sizes, pool, activation, padding, where="patch_cnn")
    return Sequential(layers + _head(dense_units, n_classes, activation, dropout), seed=seed,
                      input_shape=(in_channels, patch_size, patch_size), name=f"patch_cnn_{patch_size}")


def multiscale_patch_net(patch_sizes=(11, 29), in_channels=3, n_classes=2, filters=(16, 32), kernel_sizes=(3, 3),
                         pool=2, dense_units=128, activation="prelu", dropout=0.0, padding="valid", seed=0):
    """Several patch sizes around the same pixel, one convolutional branch each, merged.

    A small patch sees fine detail, a large one context; each branch is :func:`feature_layers`
    on its own ``Input((in_channels, s, s))``, the flattened features are joined by
    ``Concatenate`` and one head (Dense -> activation -> Dense) decides. The model takes a
    **list** of arrays, one per patch size in the order of ``patch_sizes`` (:func:`multiscale_crops`
    cuts them from one batch of large patches). Returns a graph ``hp.Model`` producing logits.
    """
    inputs, features = [], []
    for s in patch_sizes:
        inp = Input((in_channels, s, s), name=f"patch_{s}")
        inputs.append(inp)
        features.append(_chain(feature_layers(s, filters, kernel_sizes, pool, activation, padding,
                                              where=f"multiscale_patch_net branch {s}"), inp))
    out = _chain(_head(dense_units, n_classes, activation, dropout), Concatenate()(features))
    return Model(inputs, out, seed=seed, name="multiscale_patch_net_" + "_".join(map(str, patch_sizes)))


def multiscale_crops(patches, patch_sizes):
    """Centre crops of a batch of patches, one array per size: the inputs of
    :func:`multiscale_patch_net`. patches (N, C, P, P) with ``P >= max(patch_sizes)`` -> list of
    (N, C, s, s); the centre pixel ``P // 2`` lands at ``s // 2`` in every crop."""
    P = patches.shape[-1]
    if patches.ndim != 4 or patches.shape[-2] != P or max(patch_sizes) > P:
        raise ValueError(f"multiscale_crops: need square patches (N, C, P, P) with P >= {max(patch_sizes)}, "
                         f"got {tuple(patches.shape)}")
    crops = []
    for s in patch_sizes:
        a = P // 2 - s // 2
        crops.append(np.ascontiguousarray(patches[:, :, a : a + s, a : a + s]))
    return crops


def triplanar_net(patch_size, in_channels=1, n_classes=2, filters=(16, 32), kernel_sizes=(3, 3), pool=2,
                  dense_units=64, activation="prelu", dropout=0.0, padding="valid", shared_weights=False, seed=0):
    """A triplanar (2.5-D) network: three orthogonal ``patch_size`` patches through one voxel
    (axial, coronal, sagittal; :func:`handprop.data.extract_triplanar_patches`), one 2-D branch
    each, merged by ``Concatenate``, one head.

    ``shared_weights=True`` runs the *same* branch layers on all three planes (one set of
    convolution weights, a third of the parameters; the model sums their gradients). Takes a
    list of three arrays (N, in_channels, s, s). Returns a graph ``hp.Model`` producing logits.
    """
    inputs = [Input((in_channels, patch_size, patch_size), name=plane) for plane in ("axial", "coronal", "sagittal")]
    make = lambda: feature_layers(patch_size, filters, kernel_sizes, pool, activation, padding, where="triplanar_net")
    branch = make() if shared_weights else None
    features = [_chain(branch or make(), inp) for inp in inputs]
    out = _chain(_head(dense_units, n_classes, activation, dropout), Concatenate()(features))
    return Model(inputs, out, seed=seed, name=f"triplanar_net_{patch_size}" + ("_shared" if shared_weights else ""))


def cnn3d(patch_size, in_channels=1, n_classes=2, filters=(16, 32), kernel_sizes=(3, 3), pool=2, dense_units=64,
          activation="prelu", dropout=0.0, padding="valid", seed=0):
    """A small 3-D CNN on the ``patch_size`` cube around a voxel (:func:`handprop.data.extract_cubes`):
    ``Conv3D -> activation -> MaxPool3D`` blocks, Flatten, Dense head. The 3-D counterpart of
    :func:`triplanar_net` (a ``k``-wide 3-D kernel has ``k`` times the weights of a 2-D one, and
    every layer works on ``s`` times more positions). Returns a ``Sequential`` on
    (in_channels, s, s, s) producing logits (N, n_classes).
    """
    layers = feature_layers(patch_size, filters, kernel_sizes, pool, activation, padding, dims=3, where="cnn3d")
    return Sequential(layers + _head(dense_units, n_classes, activation, dropout), seed=seed,
                      input_shape=(in_channels, patch_size, patch_size, patch_size), name=f"cnn3d_{patch_size}")
