"""Exercise checkers for the notebooks: grade a student's hand-written code with the library's own tools.

Each checker takes the student's function (or number), compares it with handprop's implementation
or with central differences (:mod:`handprop.gradcheck`), and returns a :class:`CheckResult`:
truthy on success; printed (or shown in Jupyter) it says what passed, where the answer differs, and
the most likely mistake::

    >>> import handprop as hp
    >>> def momentum_step(w, dw, state, lr, momentum):   # the student's answer
    ...     state["v"] = momentum * state.get("v", 0.0) + dw
    ...     return w - lr * state["v"]
    >>> result = hp.exercises.check_momentum_step(momentum_step)
    >>> bool(result)
    True

A placeholder that still raises ``NotImplementedError`` gives "not written yet", never an error,
so an exercise notebook runs top to bottom before the student has written anything.

=========================  ======================================================================
chapter                    checkers
=========================  ======================================================================
1 neural networks          :func:`check_dense_backward`, :func:`check_softmax_cross_entropy`,
                           :func:`check_network_backward`
2 optimization             :func:`check_largest_stable_lr`, :func:`check_momentum_step`,
                           :func:`check_adam_step`
3 convolutional networks   :func:`check_output_size`, :func:`check_conv2d_backward`,
                           :func:`check_receptive_field`
4 generalization           :func:`check_regularized_gradient`, :func:`check_early_stopping`,
                           :func:`check_dropout`
5 getting started          :func:`check_parameter_counts`, :func:`check_keras_translation`
6 vessel segmentation      :func:`check_segmentation_scores`, :func:`check_dense_to_conv`
7 beyond                   :func:`check_conv3d_shape_and_params`, :func:`check_triplanar_patches`
A1 batch normalization     :func:`check_bn_forward`, :func:`check_bn_backward`, :func:`check_bn_backward_alt`,
                           :func:`check_bn_spatial`
A2 pooling                 :func:`check_maxpool_forward`, :func:`check_maxpool_backward`,
                           :func:`check_avgpool_forward`, :func:`check_avgpool_backward`
A3 im2col                  :func:`check_im2col`, :func:`check_conv_forward_im2col`,
                           :func:`check_conv_backward_im2col`
A4 training loop           :func:`check_minibatches`, :func:`check_train_step`, :func:`check_evaluate`,
                           :func:`check_train`, :func:`check_cnn`
A5 update rules            :func:`check_nesterov_step`, :func:`check_rmsprop_step`, :func:`check_adagrad_step`
A6 project                 :func:`check_project` (hidden test patients: ``HANDPROP_GRADE_SEED``)
=========================  ======================================================================

Every task (chapter exercises and assignment tasks) with its points is in :mod:`.tasks`;
``python -m handprop.exercises list | grade NOTEBOOK_OR_FOLDER`` is the autograder
(:mod:`.autograder`), which switches the library's own answer off while the student's code runs
(:mod:`.grading`).
"""

from .batchnorm import check_bn_backward, check_bn_backward_alt, check_bn_forward, check_bn_spatial
from .beyond import check_conv3d_shape_and_params, check_triplanar_patches
from .convolution import check_conv2d_backward, check_output_size, check_receptive_field
from .generalization import check_dropout, check_early_stopping, check_regularized_gradient
from .getting_started import check_keras_translation, check_parameter_counts
from .im2col import check_conv_backward_im2col, check_conv_forward_im2col, check_im2col
from .networks import check_dense_backward, check_network_backward, check_softmax_cross_entropy
from .optimization import check_adam_step, check_largest_stable_lr, check_momentum_step
from .pooling import check_avgpool_backward, check_avgpool_forward, check_maxpool_backward, check_maxpool_forward
from .project import check_project
from .result import CheckResult
from .segmentation import check_dense_to_conv, check_segmentation_scores
from .training_loop import check_cnn, check_evaluate, check_minibatches, check_train, check_train_step
from .update_rules import check_adagrad_step, check_nesterov_step, check_rmsprop_step

__all__ = [
    "CheckResult",
    "check_dense_backward",
    "check_softmax_cross_entropy",
    "check_network_backward",
    "check_largest_stable_lr",
    "check_momentum_step",
    "check_adam_step",
    "check_output_size",
    "check_conv2d_backward",
    "check_receptive_field",
    "check_regularized_gradient",
    "check_early_stopping",
    "check_dropout",
    "check_parameter_counts",
    "check_keras_translation",
    "check_segmentation_scores",
    "check_dense_to_conv",
    "check_conv3d_shape_and_params",
    "check_triplanar_patches",
    "check_bn_forward",
    "check_bn_backward",
    "check_bn_backward_alt",
    "check_bn_spatial",
    "check_maxpool_forward",
    "check_maxpool_backward",
    "check_avgpool_forward",
    "check_avgpool_backward",
    "check_im2col",
    "check_conv_forward_im2col",
    "check_conv_backward_im2col",
    "check_minibatches",
    "check_train_step",
    "check_evaluate",
    "check_train",
    "check_cnn",
    "check_project",
    "check_nesterov_step",
    "check_rmsprop_step",
    "check_adagrad_step",
]
