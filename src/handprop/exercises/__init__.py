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
=========================  ======================================================================
"""

from .beyond import check_conv3d_shape_and_params, check_triplanar_patches
from .convolution import check_conv2d_backward, check_output_size, check_receptive_field
from .generalization import check_dropout, check_early_stopping, check_regularized_gradient
from .getting_started import check_keras_translation, check_parameter_counts
from .networks import check_dense_backward, check_network_backward, check_softmax_cross_entropy
from .optimization import check_adam_step, check_largest_stable_lr, check_momentum_step
from .result import CheckResult
from .segmentation import check_dense_to_conv, check_segmentation_scores

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
]
