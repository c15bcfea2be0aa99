"""Fully convolutional networks for segmentation: U-Net and the dilated context network.

Both take images of any size (``Input((C, None, None))``) and output one logit map per class of
the same size: train them on tiles, predict on whole images.
"""

from __future__ import annotations

from ..graph import Input, Model
from ..layers import BatchNorm, Concatenate, Conv2D, Conv2DTranspose, Dropout, MaxPool2D, UpSampling2D
from ..layers.activations import get as activation_layer
from ..model import Sequential


def _conv_block(x, filters, batchnorm, activation, convs=2):
    """``convs`` times: 3 x 3 "same" convolution -> (BatchNorm) -> activation, on graph node ``x``.
    With batch norm the convolution has no bias (BatchNorm's beta replaces it)."""
    for _ in range(convs):
        x = Conv2D(filters, 3, padding="same", use_bias=not batchnorm)(x)
        if batchnorm:
            x = BatchNorm()(x)
        x = activation_layer(activation)(x)
    return x


def unet(in_channels, out_channels=1, depth=2, width=16, upsampling="nearest", batchnorm=False, dropout=0.0,
         activation="relu", seed=0):
    """U-Net (Ronneberger et al., 2015) with ``depth`` poolings and "same" padding.

    ::

        level 0:  [conv3-conv3: width] ----------------------------- concat -> [conv3-conv3: width] -> conv1
                        | pool 2                                       ^ up 2
        level 1:  [conv3-conv3: 2 width] ----------- concat -> [conv3-conv3: 2 width]
                        | pool 2                       ^ up 2
        bottom:   [conv3-conv3: 2^depth width] (-> Dropout)

    Parameters
    ----------
    in_channels, out_channels : int -- image channels in, logit maps out (1: vessel vs background).
    depth : int -- number of 2 x 2 max-poolings; the input size must be divisible by ``2 ** depth``.
    width : int -- filters of the first level, doubled at each level down.
    upsampling : ``"nearest"`` (UpSampling2D, no weights) or ``"transpose"`` (a learned 2 x 2
        Conv2DTranspose with stride 2 that also halves the channels, as the original).
    batchnorm : BatchNorm after every 3 x 3 convolution (which then has no bias).
    dropout : rate of a Dropout after the bottom block (the original drops there), 0 for none.
    activation : name or Layer class name understood by ``hp.layers.activations.get``.

    Returns a graph ``hp.Model`` on ``Input((in_channels, None, None))`` whose output
    (N, out_channels, H, W) holds logits: pair it with ``BinaryCrossEntropy(from_logits=True)``.
    Skip connections concatenate the encoder's maps with the upsampled decoder maps (channels).
    """
    if upsampling not in ("nearest", "transpose"):
        raise ValueError(f"unet: upsampling must be 'nearest' or 'transpose', got {upsampling!r}")
    if int(depth) < 1 or int(width) < 1:
        raise ValueError(f"unet: depth and width must be >= 1, got depth={depth}, width={width}")
    inp = Input((in_channels, None, None), name="image")
    x, skips = inp, []
    for level in range(depth):  # the contracting path
        x = _conv_block(x, width * 2**level, batchnorm, activation)
        skips.append(x)
        x = MaxPool2D(2)(x)
    x = _conv_block(x, width * 2**depth, batchnorm, activation)
    if dropout:
        x = Dropout(dropout)(x)
    for level in reversed(range(depth)):  # the expanding path
        filters = width * 2**level
        x = UpSampling2D(2)(x) if upsampling == "nearest" else Conv2DTranspose(filters, 2, stride=2)(x)
        x = Concatenate()([x, skips[level]])  # the skip connection
        x = _conv_block(x, filters, batchnorm, activation)
    out = Conv2D(out_channels, 1)(x)
    return Model(inp, out, seed=seed, name=f"unet_depth{depth}_width{width}")


def dilated_context_net(in_channels, out_channels=1, width=32, dilations=(1, 1, 2, 4, 8, 16, 32, 1), head_width=None,
                        activation="relu", padding="same", batchnorm=False, seed=0):
    """The dilated context network of the tutorial's receptive-field table (after Yu & Koltun, 2016).

    One 3 x 3 convolution per entry of ``dilations`` (each followed by the activation), then two
    1 x 1 layers: ``Conv2D(head_width, 1)`` -> activation -> ``Conv2D(out_channels, 1)``. With the
    default dilations the receptive fields of the ten convolutions are
    3, 5, 9, 17, 33, 65, 129, 131, 131, 131 (``hp.receptive_field``): the field grows exponentially
    with depth while the weights grow linearly (every layer has ``9 width^2`` of them).

    ``padding="same"`` keeps the image size (any size; segmentation of whole images);
    ``"valid"`` makes it a pixel classifier: a 131 x 131 patch gives one output.
    ``head_width`` defaults to ``width``. Returns a ``Sequential`` on ``(in_channels, None, None)``
    producing logits (N, out_channels, Ho, Wo).
    """
    layers = []
    for d in dilations:
        layers.append(Conv2D(width, 3, dilation=d, padding=padding, use_bias=not batchnorm))
        if batchnorm:
            layers.append(BatchNorm())
        layers.append(activation_layer(activation))
    layers += [Conv2D(head_width or width, 1), activation_layer(activation), Conv2D(out_channels, 1)]
    return Sequential(layers, seed=seed, input_shape=(in_channels, None, None), name="dilated_context_net")
