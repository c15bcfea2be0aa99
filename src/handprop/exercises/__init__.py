"""Exercise checkers for the notebooks: grade a student's hand-written code with the library's own tools.

Each checker takes the student's function (or number), compares it with handprop's implementation
or with central differences (:mod:`handprop.gradcheck`), and returns a :class:`CheckResult`:
truthy on success; printed (or shown in Jupyter) it says what passed, where the answer differs, and
the most likely mistake::

    >>> import handprop as hp
    >>> result = hp.exercises.check_momentum_step(momentum_step)
    >>> bool(result)
    True

A placeholder that still raises ``NotImplementedError`` gives "not written yet", never an error,
so an exercise notebook runs top to bottom before the student has written anything.

Chapter 2 (optimization): :func:`check_largest_stable_lr`, :func:`check_momentum_step`,
:func:`check_adam_step`. Chapter 3 (convolutional networks): :func:`check_output_size`,
:func:`check_conv2d_backward`, :func:`check_receptive_field`.
"""

from .convolution import check_conv2d_backward, check_output_size, check_receptive_field
from .optimization import check_adam_step, check_largest_stable_lr, check_momentum_step
from .result import CheckResult

__all__ = [
    "CheckResult",
    "check_largest_stable_lr",
    "check_momentum_step",
    "check_adam_step",
    "check_output_size",
    "check_conv2d_backward",
    "check_receptive_field",
]
