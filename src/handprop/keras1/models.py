"""Keras 1's ``keras.models.Sequential``, on handprop's :class:`handprop.Sequential`.

It *is* a handprop ``Sequential`` (same layers, training step and loop); what it adds is the
2016 surface:

=====================================================  ==========================================
Keras 1                                                handprop underneath
=====================================================  ==========================================
``compile(optimizer, loss, metrics)`` (that order)     ``compile(loss=, optimizer=, metrics=)``
``Activation('softmax')`` + ``'categorical_crossentropy'``  the softmax moves into the loss
                                                       (:class:`~handprop.losses.SoftmaxCrossEntropy`
                                                       on logits); ``predict`` applies it again
``fit(X, Y, nb_epoch=10, batch_size=32)``              ``fit(x, y, epochs=nb_epoch, ...)``
``predict`` / ``predict_proba`` (probabilities)        ``predict`` (logits) + the softmax layer
``predict_classes``                                    ``argmax`` of ``predict``
``dim_ordering='tf'``: batches (N, H, W, C)            transposed to (N, C, H, W) on the way in
``PReLU()``: a slope per position                      ``Flatten -> PReLU -> Reshape`` (see
                                                       :mod:`handprop.keras1.layers.advanced_activations`)
=====================================================  ==========================================

``evaluate`` and ``predict`` take Keras 1's ``batch_size=32`` and ``verbose=`` (no progress
bar is drawn for them). A model saved with ``save`` loads (``hp.load_model``) as handprop's own
``Sequential``: channels-first inputs and logits out.
"""

from __future__ import annotations

import numpy as np

from .. import layers as _hp_layers
from .. import losses as _hp_losses
from ..backend import get_array_module
from ..model import Sequential as _Sequential
from . import optimizers as _optimizers
from ._translate import reject

__all__ = ["Sequential"]

_PROBABILITY_LOSSES = {"categorical_crossentropy"}


class Sequential(_Sequential):
    """Keras 1's ``Sequential(layers=None, name=None)`` (the module docstring lists what it translates).

    ``dim_ordering``: ``"tf"`` once a layer declared it (then every image batch is (N, H, W, C)),
    else None (channels-first, handprop's own order). ``output_activation``: the final softmax
    that ``compile`` took into the loss, or None. ``keras1_rows``: one ``(Keras layer, [handprop
    layers])`` entry per ``add``, what :meth:`summary` lists.
    """

    def __init__(self, layers=None, name=None):
        self.dim_ordering = None
        self.output_activation = None
        self.keras1_rows = []
        super().__init__(name=name)
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ layers
    def add(self, layer):
        """Append a layer made by :mod:`handprop.keras1.layers` (or any handprop layer). A PReLU
        with a slope per position on images becomes ``Flatten -> PReLU -> Reshape``."""
        order = getattr(layer, "keras1_dim_ordering", None)
        if order is not None:
            if self.dim_ordering is None and order == "tf" and self.layers:
                raise ValueError("handprop.keras1.Sequential: dim_ordering='tf' must be declared by the first image "
                                 "layer (the model transposes its input batches)")
            if self.dim_ordering not in (None, order):
                raise ValueError(f"handprop.keras1.Sequential: layer {layer.name} declares dim_ordering={order!r} "
                                 f"but the model is {self.dim_ordering!r}; use one ordering")
            self.dim_ordering = order if self.dim_ordering is None and order == "tf" else self.dim_ordering
        added = self._translate_prelu(layer) if getattr(layer, "keras1_per_position", False) else [layer]
        for one in added:
            super().add(one)
        self.keras1_rows.append((layer, added))
        return self

    def _translate_prelu(self, prelu):
        """Keras 1's per-position PReLU: on (C, H, W) outputs, ``Flatten -> PReLU -> Reshape``."""
        declared = prelu.declared_input_shape
        if (self.input_shape is None and not declared) or (self.layers and self.input_shape is None):
            raise ValueError("handprop.keras1.PReLU: Keras 1's PReLU learns a slope per position, so the input size "
                             "must be known: declare input_shape= on the model's first layer")
        shape = self._output_shape_of(self.layers) if self.layers else declared
        if len(shape) == 1:
            return [prelu]
        prelu.declared_input_shape = None
        return [_hp_layers.Flatten(name=f"{prelu.name}_flatten", input_shape=None if self.layers else shape), prelu,
                _hp_layers.Reshape(shape, name=f"{prelu.name}_reshape")]

    # ------------------------------------------------------------------ channels-last data
    def _channels_first(self, x):
        """(N, H, W, C) -> (N, C, H, W) for a ``dim_ordering='tf'`` model; anything else unchanged."""
        if self.dim_ordering == "tf" and getattr(x, "ndim", 0) == 4:
            return get_array_module(x).ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x

    def ensure_built(self, x, dtype=None):
        if not self.built:
            x = self._channels_first(x)
        return super().ensure_built(x, dtype)

    def forward(self, x, training=True):
        """handprop's forward on the batch in handprop's (N, C, H, W) order."""
        x = self._prepare(x)
        self.ensure_built(x)
        return super().forward(self._channels_first(x), training)

    __call__ = forward

    def backward(self, dy, input_grad=True):
        """handprop's backward; the input gradient goes back in the data's (N, H, W, C) order."""
        dx = super().backward(dy, input_grad)
        if dx is not None and self.dim_ordering == "tf" and dx.ndim == 4:
            dx = get_array_module(dx).ascontiguousarray(dx.transpose(0, 2, 3, 1))
        return dx

    # ------------------------------------------------------------------ compile, fit, evaluate, predict
    def compile(self, optimizer, loss, metrics=None, **others):
        """Keras 1's ``compile(optimizer, loss, metrics=None)``. With ``'categorical_crossentropy'``
        the model must end in ``Activation('softmax')`` (Keras 1's loss reads probabilities); that
        softmax moves into handprop's fused softmax cross-entropy (exact for any logits) and
        :meth:`predict` applies it."""
        reject("compile", others, ["optimizer", "loss", "metrics"])
        if loss in _PROBABILITY_LOSSES or self.output_activation is not None:
            if self.output_activation is None:
                last = self.layers[-1] if self.layers else None
                if not isinstance(last, _hp_layers.Softmax):
                    raise ValueError(f"handprop.keras1.Sequential.compile: loss={loss!r} in Keras 1 reads "
                                     "probabilities; end the model with Activation('softmax')")
                self.output_activation = self.layers.pop()
            elif loss not in _PROBABILITY_LOSSES:
                raise ValueError(f"handprop.keras1.Sequential.compile: the final softmax already went into the loss; "
                                 f"build the model again for loss={loss!r}")
            loss = _hp_losses.SoftmaxCrossEntropy()
        return super().compile(loss=loss, optimizer=_optimizers.get(optimizer), metrics=metrics)

    def fit(self, x, y, batch_size=32, nb_epoch=10, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0, **others):
        """Keras 1's ``fit``: ``nb_epoch`` epochs (default 10, as Keras 1) of ``batch_size`` samples;
        the rest as :meth:`handprop.Sequential.fit`."""
        reject("fit", others, ["x", "y", "batch_size", "nb_epoch", "verbose", "callbacks", "validation_split",
                               "validation_data", "shuffle", "class_weight", "sample_weight", "initial_epoch"])
        return super().fit(x, y, epochs=nb_epoch, batch_size=batch_size, verbose=verbose, callbacks=callbacks,
                           validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                           class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch)

    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None, **others):
        """Keras 1's ``evaluate``: the loss, or ``[loss, metric, ...]`` with metrics."""
        reject("evaluate", others, ["x", "y", "batch_size", "verbose", "sample_weight"])
        return super().evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight)

    def predict(self, x, batch_size=32, verbose=0, **others):
        """Keras 1's ``predict``: the model's outputs, probabilities when it ends in a softmax."""
        reject("predict", others, ["x", "batch_size", "verbose"])
        out = super().predict(x, batch_size=batch_size)
        if self.output_activation is not None:
            out = self.output_activation.forward(out, training=False)
        return out

    def predict_proba(self, x, batch_size=32, verbose=1):
        """Keras 1's ``predict_proba``: :meth:`predict`."""
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=1):
        """Keras 1's ``predict_classes``: the argmax of the probabilities, or ``p > 0.5`` for one output."""
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype(np.int32)

    # ------------------------------------------------------------------ description
    def keras1_output_shapes(self):
        """Each Keras layer's output shape as Keras 1 reports it (channels last with 'tf'), without the batch axis."""
        out = []
        for _, added in self.keras1_rows:
            shape = added[-1].output_shape
            if shape is None:
                raise RuntimeError("keras1_output_shapes: the model is not built yet; declare input_shape= or fit it")
            if self.dim_ordering == "tf" and len(shape) == 3:
                shape = (shape[1], shape[2], shape[0])
            out.append(tuple(shape))
        return out

    def summary(self, print_fn=print):
        """Keras 1's summary: one row per layer added, shapes in the model's ordering, parameter counts
        (a per-position PReLU's three handprop layers on one row)."""
        shapes = self.keras1_output_shapes()
        rows = [(f"{layer.name} ({type(layer).__name__})", "(None, " + ", ".join(map(str, shape)) + ")",
                 f"{sum(one.count_params() for one in added):,}")
                for (layer, added), shape in zip(self.keras1_rows, shapes)]
        width = [max(len(r[i]) for r in rows + [("Layer (type)", "Output Shape", "Param #")]) + 2 for i in range(3)]
        line = "=" * sum(width)
        ordering = ", dim_ordering='tf'" if self.dim_ordering == "tf" else ""
        text = "\n".join([f'Model: "{self.name}" (handprop.keras1{ordering})', line,
                          "".join(h.ljust(w) for h, w in zip(("Layer (type)", "Output Shape", "Param #"), width)),
                          line, *("".join(c.ljust(w) for c, w in zip(r, width)) for r in rows), line,
                          f"Total params: {self.count_params():,}"])
        if self.output_activation is not None:
            text += "\n(the final softmax is applied by the loss in training, by predict afterwards)"
        if print_fn is not None:
            print_fn(text)
        return text
