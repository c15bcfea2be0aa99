"""Pre-training: a convolutional autoencoder whose encoder is reused in a classifier.

The tutorial's recipe when labels are scarce: (1) train an autoencoder to reproduce unlabeled
images through a narrow code; (2) keep its encoder, put a small classifier on top, train only
the new layers with the few labels (encoder frozen); (3) optionally unfreeze and fine-tune all
with a small learning rate::

    autoencoder, encoder = arch.conv_autoencoder(in_channels=3)
    autoencoder.compile(loss="mse", optimizer="adam"); autoencoder.fit(x_unlabeled, x_unlabeled)
    clf = arch.classifier_from_encoder(encoder, n_classes=2)     # encoder layers frozen
    clf.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer="adam"); clf.fit(x_few, y_few)
    encoder.trainable = True                                      # fine-tune everything
    clf.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(lr=1e-4))

The encoder's layers are the *same objects* in all three models (built once, never
re-initialized): training one changes the others. Copy a model with
``handprop.model.clone_model`` first when that is not wanted.
"""

from __future__ import annotations

from ..layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, UpSampling2D
from ..layers.activations import get as activation_layer
from ..model import Sequential


def conv_autoencoder(in_channels=1, filters=(16, 32), activation="relu", seed=0):
    """A convolutional autoencoder; returns ``(autoencoder, encoder)``.

    Encoder: per entry of ``filters``, ``Conv2D(f, 3, "same") -> activation -> MaxPool2D(2)``
    (the code is ``2 ** len(filters)`` times smaller per side). Decoder, mirrored:
    ``UpSampling2D(2) -> Conv2D(f, 3, "same") -> activation``, then ``Conv2D(in_channels, 3,
    "same")``: a linear reconstruction, to train with ``MeanSquaredError`` against the input.

    Both are ``Sequential`` models on ``(in_channels, None, None)`` (image sizes divisible by
    ``2 ** len(filters)``); ``encoder.layers`` are the autoencoder's first layers, the same objects.
    """
    encoder_layers = []
    for f in filters:
        encoder_layers += [Conv2D(f, 3, padding="same"), activation_layer(activation), MaxPool2D(2)]
    decoder_layers = []
    for f in reversed(filters):
        decoder_layers += [UpSampling2D(2), Conv2D(f, 3, padding="same"), activation_layer(activation)]
    decoder_layers.append(Conv2D(in_channels, 3, padding="same"))
    shape = (in_channels, None, None)
    encoder = Sequential(encoder_layers, seed=seed, input_shape=shape, name="encoder")
    autoencoder = Sequential(encoder_layers + decoder_layers, seed=seed, input_shape=shape, name="autoencoder")
    return autoencoder, encoder


def classifier_from_encoder(encoder_layers, n_classes, dense_units=64, freeze=True, activation="relu",
                            input_shape=None, seed=0):
    """A classifier on top of a (pre-trained) encoder: ``encoder layers -> Flatten -> Dense(dense_units)
    -> activation -> Dense(n_classes)`` (logits, for ``SoftmaxCrossEntropy``).

    ``encoder_layers``: a model (its ``layers``) or a list of layers, reused as they are -- their
    trained weights are kept. ``freeze=True`` sets ``trainable = False`` on them: the optimizer
    leaves them alone while gradients still flow through (set ``encoder.trainable = True`` or each
    ``layer.trainable = True`` to fine-tune). ``input_shape`` (C, H, W) builds the model at once;
    otherwise it is built from the first batch (Flatten fixes the patch size then).
    """
    layers = list(getattr(encoder_layers, "layers", encoder_layers))
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise TypeError("classifier_from_encoder: pass the encoder model or a list of its layers")
    if freeze:
        for layer in layers:
            layer.trainable = False
    head = [Flatten(), Dense(dense_units), activation_layer(activation), Dense(n_classes)]
    return Sequential(layers + head, seed=seed, input_shape=input_shape, name="classifier_from_encoder")
