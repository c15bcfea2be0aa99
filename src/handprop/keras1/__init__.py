"""The deck's 2016 Keras (Keras 1) spellings, translated onto handprop.

The tutorial's code was written for Keras 1 with the TensorFlow backend. Each of its
``from keras.X import Y`` lines works here as ``from handprop.keras1.X import Y``::

    from handprop.keras1.models import Sequential
    from handprop.keras1.layers.core import Dense, Activation
    from handprop.keras1.optimizers import SGD

    model = Sequential()
    model.add(Dense(output_dim=64, input_dim=100, init="glorot_uniform"))
    model.add(Activation("relu"))
    ...
    model.fit(X_train, Y_train, nb_epoch=5, batch_size=32)

Every name is a thin translation: it returns (or, for ``Sequential``, is) handprop's own layer,
optimizer or model, built from the Keras 1 arguments. No arithmetic lives here; the math is
handprop's, read in :mod:`handprop.layers`. Modules:

* :mod:`handprop.keras1.models` -- ``Sequential`` (``compile(optimizer, loss)``, ``nb_epoch``,
  ``predict_classes``, ``predict_proba``, channels-last batches with ``dim_ordering='tf'``);
* :mod:`handprop.keras1.layers` with ``core`` (``Dense(output_dim, init, input_dim)``,
  ``Activation``, ``Flatten``, ``Dropout(p)``), ``convolutional`` (``Convolution2D(20, 5, 5)``
  meaning a 5x5 kernel -- here only; ``border_mode``, ``subsample``, ``dim_ordering``;
  ``AtrousConvolution2D``; the pooling layers), ``pooling`` and ``advanced_activations``
  (``PReLU`` with Keras 1's slope per position, ``LeakyReLU(alpha=0.3)``, ``ELU``);
* :mod:`handprop.keras1.optimizers` -- ``SGD``, ``Adam``, ``RMSprop``, ``Adagrad``, ``Adadelta``
  with Keras 1's names and defaults.

handprop's own API stays as it is (``hp.layers.Conv2D(20, 5, 5)`` is refused there: the third
number would be a stride). An argument this module does not translate is a TypeError that names
it and says what to write instead (Keras 2's spelling, or handprop's).
"""

from . import layers, models, optimizers

__all__ = ["layers", "models", "optimizers"]
