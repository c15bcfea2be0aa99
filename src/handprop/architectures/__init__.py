"""The tutorial's architectures as short builder functions: each returns a model, ready to
``compile`` and ``fit``, so a notebook shows an architecture in a few lines::

    import handprop as hp
    from handprop import architectures as arch

    model = arch.unet(in_channels=3, depth=2, width=16)            # any image size divisible by 4
    model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer="adam")
    model.summary()

================================  =================================================================
builder                           what the tutorial uses it for
================================  =================================================================
:func:`patch_cnn`                 the ConvNet of the tutorial: classify a pixel from a patch
:func:`multiscale_patch_net`      small and large patches around one pixel, one branch each
:func:`dilated_context_net`       the receptive-field table: dilations 1, 1, 2, 4, 8, 16, 32, 1
:func:`unet`                      encoder-decoder with skip connections, whole images
:func:`triplanar_net`             three orthogonal 2-D patches of a 3-D volume (2.5-D)
:func:`cnn3d`                     the same task with 3-D convolutions
:func:`conv_autoencoder`          unsupervised pre-training; :func:`classifier_from_encoder` reuses it
:func:`parameter_reduction_net`   the "reducing parameters" slide: factorized, dilated, shared,
                                  depthwise-separable versions of one 7 x 7 context block
:func:`gan`, :func:`train_gan`    a small GAN trained with the public model API only
================================  =================================================================

Every builder takes ``seed`` (the same seed, the same initial weights). Classifiers output
logits (pair them with ``SoftmaxCrossEntropy`` or ``BinaryCrossEntropy(from_logits=True)``).
"""

from .autoencoder import classifier_from_encoder, conv_autoencoder
from .gan import discriminator_step, gan, generator_step, stack, train_gan
from .patches import cnn3d, multiscale_crops, multiscale_patch_net, patch_cnn, triplanar_net
from .reduction import REDUCTIONS, context_block, parameter_reduction_net
from .segmentation import dilated_context_net, unet

__all__ = [
    "unet", "dilated_context_net", "patch_cnn", "multiscale_patch_net", "multiscale_crops", "triplanar_net",
    "cnn3d", "conv_autoencoder", "classifier_from_encoder", "REDUCTIONS", "context_block",
    "parameter_reduction_net", "gan", "stack", "train_gan", "generator_step", "discriminator_step",
]
