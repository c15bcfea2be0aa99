"""Learning-rate schedules, and the Keras-style callback that applies them during ``fit``.

A schedule is any callable ``schedule(epoch) -> lr`` with ``epoch = 0, 1, 2, ...`` (0 is the
first epoch, as in Keras). Large steps early move fast; small steps late settle into a minimum
instead of bouncing around it. The classes here are the classic shapes::

    StepDecay(initial_lr, drop=0.5, every=10)   lr = initial_lr * drop ** floor(epoch / every)
    ExponentialDecay(initial_lr, gamma)          lr = initial_lr * gamma ** epoch
    CosineDecay(initial_lr, epochs, min_lr=0)    lr = min_lr + (initial_lr - min_lr) * (1 + cos(pi * epoch / epochs))/2

Use one during training with a callback, which sets ``model.optimizer.lr`` at the start of every
epoch and records it as ``logs["lr"]`` (so ``history.history["lr"]`` shows it)::

    model.fit(x, y, epochs=30, callbacks=[LearningRateScheduler(StepDecay(0.1, drop=0.5, every=10))])

Any function works too: ``LearningRateScheduler(lambda epoch: 0.1 / (1 + epoch))``, or Keras's
two-argument form ``lambda epoch, lr: lr * 0.9``.
"""

from __future__ import annotations

import inspect
import math

from .callbacks import Callback

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineDecay", "LearningRateScheduler"]


class Schedule:
    """Base class: ``schedule(epoch) -> float``; ``schedule.values(n)`` lists the first n learning rates."""

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def values(self, epochs: int) -> list[float]:
        """``[schedule(0), ..., schedule(epochs - 1)]``, e.g. to plot the schedule."""
        return [self(epoch) for epoch in range(epochs)]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check_epoch(epoch):
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")


class StepDecay(Schedule):
    """Multiply the learning rate by ``drop`` every ``every`` epochs (torch's ``StepLR``).

    ``lr(epoch) = initial_lr * drop ** floor(epoch / every)``; e.g. 0.1 for epochs 0-9, 0.05 for
    10-19, 0.025 for 20-29 with the defaults.
    """

    def __init__(self, initial_lr, drop=0.5, every=10):
        if int(every) < 1:
            raise ValueError(f"StepDecay: every must be a positive number of epochs, got {every}")
        self.initial_lr = float(initial_lr)
        self.drop = float(drop)
        self.every = int(every)

    def __call__(self, epoch):
        _check_epoch(epoch)
        return self.initial_lr * self.drop ** (int(epoch) // self.every)


class ExponentialDecay(Schedule):
    """Multiply the learning rate by ``gamma`` every epoch (torch's ``ExponentialLR``).

    ``lr(epoch) = initial_lr * gamma ** epoch``; the half-life is ``log(0.5) / log(gamma)`` epochs.
    """

    def __init__(self, initial_lr, gamma):
        if not 0.0 < gamma:
            raise ValueError(f"ExponentialDecay: gamma must be positive, got {gamma}")
        self.initial_lr = float(initial_lr)
        self.gamma = float(gamma)

    def __call__(self, epoch):
        _check_epoch(epoch)
        return self.initial_lr * self.gamma ** int(epoch)


class CosineDecay(Schedule):
    """Half a cosine from ``initial_lr`` down to ``min_lr`` over ``epochs`` epochs, then ``min_lr``.

    ``lr(epoch) = min_lr + (initial_lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2`` for
    ``epoch <= epochs`` (torch's ``CosineAnnealingLR`` with ``T_max = epochs``, without restarts).
    """

    def __init__(self, initial_lr, epochs, min_lr=0.0):
        if int(epochs) < 1:
            raise ValueError(f"CosineDecay: epochs must be positive, got {epochs}")
        self.initial_lr = float(initial_lr)
        self.epochs = int(epochs)
        self.min_lr = float(min_lr)

    def __call__(self, epoch):
        _check_epoch(epoch)
        progress = min(int(epoch), self.epochs) / self.epochs
        return self.min_lr + (self.initial_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


def _takes_two_arguments(fn) -> bool:
    """True for Keras's ``schedule(epoch, lr)`` form, False for ``schedule(epoch)``."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: assume schedule(epoch)
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    return len(positional) >= 2 or varargs


class LearningRateScheduler(Callback):
    """Set ``model.optimizer.lr = schedule(epoch)`` at the start of every epoch (a Keras callback).

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch) -> lr`` (e.g. a :class:`Schedule`), or Keras's
        ``schedule(epoch, lr) -> lr`` which also receives the current learning rate.
    verbose : int, default 0
        1 prints the learning rate at the start of each epoch.

    The learning rate in force is written to the epoch's logs as ``logs["lr"]`` (at the start of
    the epoch and again at its end), so ``History`` records it as ``history.history["lr"]``.
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_arguments = _takes_two_arguments(schedule)

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "lr"):
            raise AttributeError("LearningRateScheduler: the model has no optimizer with an 'lr' attribute; "
                                 "call model.compile(optimizer=...) before fit")
        return optimizer

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self._optimizer()
        if self._two_arguments:
            lr = self.schedule(epoch, optimizer.lr)
        else:
            lr = self.schedule(epoch)
        lr = float(lr)
        if not (math.isfinite(lr) and lr >= 0.0):
            raise ValueError(f"LearningRateScheduler: schedule({epoch}) returned {lr}; "
                             "a learning rate must be a finite number >= 0")
        optimizer.lr = lr
        if logs is not None:
            logs["lr"] = lr  # also here: fit passes this same dict to on_epoch_end, whatever the callback order
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self._optimizer().lr)
