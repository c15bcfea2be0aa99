"""handprop's own warning and error classes.

A test or a notebook can catch or silence exactly them::

    with pytest.warns(hp.DivergenceWarning): model.fit(...)
    warnings.simplefilter("ignore", hp.HandpropWarning)      # all of handprop's warnings
"""

from __future__ import annotations


class HandpropWarning(UserWarning):
    """Base class of every warning handprop issues."""


class DivergenceWarning(HandpropWarning, RuntimeWarning):
    """Training is diverging: the loss grew by orders of magnitude (usually a learning rate that is
    too high, or unnormalized inputs or targets)."""


class NumbaCacheWarning(HandpropWarning):
    """The numba engine cannot cache its compiled kernels on disk (a read-only install): it
    compiles them in every new process instead."""


class DataError(ValueError):
    """The data given to the task is not what it needs (an unreadable image, an empty mask, too few
    patients); the message names the file or the count. ``handprop demo`` prints it without a
    traceback."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A file or folder the data needs is missing; the message says which and where it looked."""


class ModelFileError(DataError):
    """A model file that handprop will not load: truncated, corrupt (its checksum differs), foreign,
    malformed, or holding tensors that are not what its architecture says. The message names the
    file and what is wrong with it (:mod:`handprop.saving`)."""


__all__ = ["HandpropWarning", "DivergenceWarning", "NumbaCacheWarning", "DataError", "DataNotFoundError",
           "ModelFileError"]
