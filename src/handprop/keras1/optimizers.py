"""Keras 1's ``keras.optimizers``: each returns handprop's optimizer (:mod:`handprop.optimizers`)
with Keras 1's argument names and **Keras 1's defaults** (which differ from PyTorch's, handprop's
own: e.g. RMSprop's lr 0.001 and rho 0.9)::

    SGD(lr=0.01, momentum=0.9, nesterov=True)  -> hp.optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True)
    Adam(lr, beta_1, beta_2, epsilon)          -> hp.optimizers.Adam(lr, betas=(beta_1, beta_2), eps=epsilon)
    RMSprop(lr, rho, epsilon)                  -> hp.optimizers.RMSprop(lr, alpha=rho, eps=epsilon)
    Adagrad(lr, epsilon)                       -> hp.optimizers.AdaGrad(lr, eps=epsilon)
    Adadelta(lr, rho, epsilon)                 -> hp.optimizers.AdaDelta(lr, rho=rho, eps=epsilon)

The update equations are handprop's (PyTorch's). Keras 1 writes momentum as a velocity,
``v <- m v - lr g; w <- w + v`` (Nesterov: ``w <- w + m v - lr g``), PyTorch as a buffer,
``b <- m b + g; w <- w - lr b`` (Nesterov: ``w <- w - lr (g + m b)``): with a constant learning
rate ``v = -lr b`` and the steps are the same (``tests/test_keras1.py`` checks it). Keras 1's Adam
adds epsilon after its bias correction of the step size, PyTorch's before: the two differ by a
relative ~1e-8 at the default epsilon. Keras 1's ``decay=`` (``lr / (1 + decay t)`` per update)
is refused with the schedule to use instead.
"""

from __future__ import annotations

from .. import optimizers as _hp
from ._translate import reject

__all__ = ["SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "get"]


def SGD(lr=0.01, momentum=0.0, decay=0.0, nesterov=False, **others):
    """Keras 1's ``SGD``: ``hp.optimizers.SGD(lr, momentum, nesterov)``."""
    reject("SGD", {"decay": decay, **others}, ["lr", "momentum", "decay", "nesterov"])
    return _hp.SGD(lr=lr, momentum=momentum, nesterov=nesterov)


def Adam(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, decay=0.0, **others):
    """Keras 1's ``Adam``: ``hp.optimizers.Adam(lr, betas=(beta_1, beta_2), eps=epsilon)``."""
    reject("Adam", {"decay": decay, **others}, ["lr", "beta_1", "beta_2", "epsilon", "decay"])
    return _hp.Adam(lr=lr, betas=(beta_1, beta_2), eps=epsilon)


def RMSprop(lr=0.001, rho=0.9, epsilon=1e-8, decay=0.0, **others):
    """Keras 1's ``RMSprop``: ``hp.optimizers.RMSprop(lr, alpha=rho, eps=epsilon)`` (PyTorch calls rho alpha)."""
    reject("RMSprop", {"decay": decay, **others}, ["lr", "rho", "epsilon", "decay"])
    return _hp.RMSprop(lr=lr, alpha=rho, eps=epsilon)


def Adagrad(lr=0.01, epsilon=1e-8, decay=0.0, **others):
    """Keras 1's ``Adagrad``: ``hp.optimizers.AdaGrad(lr, eps=epsilon)``."""
    reject("Adagrad", {"decay": decay, **others}, ["lr", "epsilon", "decay"])
    return _hp.AdaGrad(lr=lr, eps=epsilon)


def Adadelta(lr=1.0, rho=0.95, epsilon=1e-8, decay=0.0, **others):
    """Keras 1's ``Adadelta``: ``hp.optimizers.AdaDelta(lr, rho, eps=epsilon)``."""
    reject("Adadelta", {"decay": decay, **others}, ["lr", "rho", "epsilon", "decay"])
    return _hp.AdaDelta(lr=lr, rho=rho, eps=epsilon)


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad, "adadelta": Adadelta}


def get(identifier):
    """An optimizer from Keras 1's name (``"sgd"``, ``"adam"``, ...: Keras 1's defaults) or an
    optimizer object (returned as it is)."""
    if isinstance(identifier, _hp.Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"handprop.keras1: unknown optimizer {identifier!r}; choose one of {sorted(_BY_NAME)} "
                     "or pass an optimizer object")
