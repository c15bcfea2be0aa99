"""Training callbacks, in the Keras style.

A callback is an object whose hooks ``fit`` calls at fixed moments::

    on_train_begin(logs)   on_epoch_begin(epoch, logs)   on_batch_end(batch, logs)
    on_epoch_end(epoch, logs)   on_train_end(logs)

``ModelCheckpoint`` saves the model (best or every epoch); ``EarlyStopping`` stops training;
``ProgressBar`` is what ``fit`` prints (``fit`` adds it and ``History`` itself).

``logs`` is a dict of the metrics so far (``"loss"``, ``"val_loss"``, ``"accuracy"``, ...); a
batch's are ``{"batch", "size", "loss"}``. ``callback.model`` is the model being trained;
setting ``model.stop_training = True`` ends training after the current epoch.
``callback.params`` holds ``fit``'s ``"epochs"``, ``"steps"`` (batches per epoch, None when a
source does not say) and ``"verbose"``, as Keras.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
from tqdm.auto import tqdm


class Callback:
    """Base class: every hook does nothing."""

    model = None
    params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class History(Callback):
    """Records one value per epoch per metric in ``history.history`` (a dict of lists), as Keras."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


class ProgressBar(Callback):
    """What ``fit`` prints: ``verbose=1`` a progress bar per epoch (`tqdm`_; the running mean loss,
    then the epoch's logs), ``verbose=2`` one line per epoch, ``verbose=0`` nothing.

    .. _tqdm: https://tqdm.github.io
    """

    def __init__(self, verbose=1):
        self.verbose = verbose
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.loss_sum = self.samples = 0.0
        if self.verbose == 1:
            self.bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{self.params.get('epochs')}",
                            file=sys.stdout, leave=True, dynamic_ncols=True)

    def on_batch_end(self, batch, logs=None):
        if self.bar is None:
            return
        size = logs.get("size", 1)
        self.loss_sum += logs["loss"] * size
        self.samples += size
        self.bar.update(1)
        if batch % 10 == 0 or batch + 1 == self.bar.total:
            self.bar.set_postfix(loss=f"{self.loss_sum / self.samples:.4f}")

    def on_epoch_end(self, epoch, logs=None):
        text = {k: f"{v:.4f}" for k, v in (logs or {}).items()}
        if self.bar is not None:
            self.bar.set_postfix(text)
            self.close()
        if self.verbose == 2:
            values = " - ".join(f"{k}: {v}" for k, v in text.items())
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {values}")

    def close(self):
        """Close the epoch's bar if one is open (``fit`` calls this also when a step fails)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` is ``"min"`` for losses and ``"max"`` for scores (``"auto"`` picks "max" when the name
    is a score: acc, auc, dice, f1, sensitivity, ...; see :func:`auto_mode`). With
    ``restore_best_weights=True`` the parameters and state of the best epoch are put back at the
    end of ``fit``, whether or not training stopped early.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=0):
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        if mode == "auto":
            mode = auto_mode(monitor)
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: monitored metric {self.monitor!r} is not in the logs "
                f"(available: {sorted(logs)}); pass validation_data to monitor 'val_*' metrics"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.get_weights())
        else:
            self.wait += 1
            if self.wait >= self.patience:  # Keras: stop after `patience` epochs without improvement
                self.stopped_epoch = epoch
                self.model.stop_training = True
                if self.verbose:
                    best = ("none yet" if self.best_epoch is None
                            else f"best {self.best:.4g} at epoch {self.best_epoch + 1}")
                    print(f"EarlyStopping: no improvement in {self.monitor} for {self.wait} epochs; {best}")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch, or only when ``monitor`` improved.

    ``filepath`` may hold fields of the epoch (1-based) and the logs, as Keras:
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``. Files are written by :meth:`Model.save`
    (architecture, weights, optimizer state, random generators: ``hp.load_model`` resumes
    training exactly) or, with ``save_weights_only=True``, by :meth:`Model.save_weights`. Each
    write is atomic, so a crash mid-save never leaves a half-written checkpoint.

    ``save_best_only=True`` saves only when ``monitor`` beat its best so far (``mode`` as
    :class:`EarlyStopping`: "min", "max", or "auto" = :func:`auto_mode`).
    ``best``, ``best_epoch`` (0-based) and ``last_path`` tell what was saved.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto", save_weights_only=False,
                 verbose=0):
        if not isinstance(filepath, str) and not hasattr(filepath, "__fspath__"):
            raise TypeError(f"ModelCheckpoint: filepath must be a path, got {type(filepath).__name__}")
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        if mode == "auto":
            mode = auto_mode(monitor)
        if mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.mode = mode
        self.save_weights_only = bool(save_weights_only)
        self.verbose = verbose
        self.best = np.inf if mode == "min" else -np.inf
        self.best_epoch = None
        self.last_path = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(f"ModelCheckpoint: monitored metric {self.monitor!r} is not in the logs "
                               f"(available: {sorted(logs)}); pass validation_data to monitor 'val_*' metrics")
            value = float(logs[self.monitor])
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best, self.best_epoch = value, epoch
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} from the epoch and the "
                             f"logs {sorted(logs)}: {e!r}") from None
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_path = path
        if self.verbose:
            print(f"ModelCheckpoint: epoch {epoch + 1}: saved {path}")


HIGHER_IS_BETTER = ("acc", "auc", "dice", "f1", "iou", "precision", "recall", "sensitivity", "specificity")


def auto_mode(monitor):
    """"max" when the monitored name is a score (accuracy, AUC, Dice, F1, IoU, precision, recall,
    sensitivity, specificity), else "min" (losses and errors)."""
    name = monitor.lower()
    return "max" if any(word in name for word in HIGHER_IS_BETTER) else "min"
