"""Sequential: building, summary, the training loop, History, determinism, EarlyStopping, errors,
and an end-to-end run on the digits data set."""

from __future__ import annotations

import time

import numpy as np
import pytest

import handprop as hp
from handprop import layers as L
from handprop.callbacks import Callback, EarlyStopping, History
from handprop.losses import SoftmaxCrossEntropy
from handprop.optimizers import SGD


def blobs(n=60, classes=3, features=4, seed=0):
    """Gaussian blobs: an easy, deterministic classification problem."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = 3 * rng.standard_normal((classes, features))
    return (centers[y] + rng.standard_normal((n, features))).astype(np.float32), y


def mlp(seed=0, input_shape=None, lr=0.1, extra=()):
    model = hp.Sequential([L.Dense(8), *extra, L.ReLU(), L.Dense(3)], seed=seed, input_shape=input_shape)
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(lr=lr), metrics=["accuracy"])
    return model


class Spy(L.Linear):
    """Identity layer that records the sample ids (column 0) of every training batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x, training=True):
        if training:
            self.batches.append(x[:, 0].astype(int).tolist())
        return super().forward(x, training)


class Script(Callback):
    """Writes scripted values of a fake metric into the logs (before EarlyStopping reads them)
    and records the weights at the end of every epoch."""

    def __init__(self, name, values):
        self.name, self.values, self.weights = name, values, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]
        self.weights.append(self.model.get_weights())


# ------------------------------------------------------------------------------- building
def test_lazy_build_from_first_batch():
    model = mlp()
    assert not model.built and not model.named_params()
    with pytest.raises(RuntimeError, match="not built"):
        model.summary()
    x, _ = blobs()
    model.predict(x[:2])
    assert model.built and model.input_shape == (4,)
    assert [la.output_shape for la in model.layers] == [(8,), (8,), (3,)]
    assert model.named_params()["0.Dense/W"].shape == (4, 8)
    assert all(p.dtype == np.float32 for p in model.named_params().values())


def test_eager_build_and_summary(capsys):
    model = mlp(input_shape=(4,))
    assert model.built and model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert model.summary(print_fn=None) == text
    for expected in ("Dense (Dense)", "ReLU (ReLU)", "(None, 8)", "(None, 3)", "40", "27",
                     "Total params: 67"):
        assert expected in text
    order = [ln.split()[0] for ln in text.splitlines() if "(" in ln and ln.split()[0] in ("Dense", "ReLU")]
    assert order == ["Dense", "ReLU", "Dense"]


def test_eager_and_lazy_builds_give_the_same_weights():
    x, _ = blobs()
    lazy, eager = mlp(seed=4), mlp(seed=4, input_shape=(4,))
    lazy.predict(x)
    for k, v in eager.named_params().items():
        np.testing.assert_array_equal(lazy.named_params()[k], v)


def test_building_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"building layer 0 \(Dense\) on input \(N, 2, 4, 4\).*Flatten"):
        hp.Sequential([L.Dense(3)], input_shape=(2, 4, 4))
    with pytest.raises(TypeError, match="expects a handprop Layer"):
        hp.Sequential().add("relu")
    with pytest.raises(RuntimeError, match="not built yet"):
        hp.Sequential(input_shape=(3,)).summary()


def test_add_after_input_shape_builds_each_layer_keras_style():
    model = hp.Sequential(seed=0, input_shape=(4,))
    model.add(L.Dense(5))
    model.add(L.ReLU())
    assert model.built and model.layers[0].params["W"].shape == (4, 5)
    model.add(L.Dense(2))  # adding to a built model builds the new layer on the last output shape
    assert model.predict(np.zeros((3, 4))).shape == (3, 2)
    assert "Total params: 37" in model.summary(print_fn=None)
    with pytest.raises(ValueError, match=r"layer 3 \(Conv2D\)"):
        model.add(L.Conv2D(2, 3))


# ------------------------------------------------------------------------------- fit / History
def test_fit_returns_history_with_one_value_per_epoch():
    x, y = blobs()
    model = mlp()
    history = model.fit(x[:45], y[:45], epochs=4, batch_size=8, validation_data=(x[45:], y[45:]), verbose=0)
    assert isinstance(history, History)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["loss"][-1] < history.history["loss"][0]
    # the last val_loss is evaluate() on the validation set with the final weights
    loss, acc = model.evaluate(x[45:], y[45:])
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(acc)
    assert "History(epochs=4" in repr(history)
    plain = mlp().fit(x, y, epochs=2, verbose=0)
    assert set(plain.history) == {"loss", "accuracy"}


def test_each_epoch_is_one_pass_over_a_permutation():
    x, y = blobs(n=50)
    x[:, 0] = np.arange(50)  # column 0 carries the sample id
    spy = Spy()
    model = hp.Sequential([spy, L.Dense(3)], seed=1)
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(lr=1e-4))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert [len(b) for b in spy.batches] == [8] * 6 + [2] + [8] * 6 + [2] + [8] * 6 + [2]
    epochs = [sum(spy.batches[7 * e:7 * (e + 1)], []) for e in range(3)]
    for seen in epochs:
        assert sorted(seen) == list(range(50))  # every sample exactly once
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(50))  # reshuffled each epoch
    spy.batches.clear()
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert sum(spy.batches, []) == list(range(50))


def test_validation_split_holds_out_the_last_fraction():
    x, y = blobs(n=50)
    x[:, 0] = np.arange(50)
    spy = Spy()
    model = hp.Sequential([spy, L.Dense(3)], seed=0)
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(lr=1e-4), metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0)
    assert sorted(sum(spy.batches, [])) == sorted(list(range(40)) * 2)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[40:], y[40:])[0], rel=1e-6)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = blobs()
    mlp().fit(x, y, epochs=3, verbose=2)
    out = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(out) == 3 and out[0].startswith("Epoch 1/3 - loss:") and "accuracy:" in out[0]


def test_compile_accepts_names():
    x, y = blobs()
    model = hp.Sequential([L.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["acc"])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(loss="mse", optimizer="gradient_descent")


# ------------------------------------------------------------------------------- determinism
def train_weights(seed):
    x, y = blobs()
    model = mlp(seed=seed, extra=(L.BatchNorm(), L.Dropout(0.3)))
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    return model.get_weights(), history.history


def test_same_seed_gives_bit_identical_training():
    w1, h1 = train_weights(seed=7)
    w2, h2 = train_weights(seed=7)
    w3, _ = train_weights(seed=8)
    assert set(w1) == set(w2) and "1.BatchNorm/running_var" in w1
    for k in w1:
        assert np.array_equal(w1[k], w2[k]), k
    assert h1 == h2
    assert not np.array_equal(w1["0.Dense/W"], w3["0.Dense/W"])


# ------------------------------------------------------------------------------- inference
def test_evaluate_returns_loss_and_accuracy():
    x, y = blobs()
    model = mlp()
    model.fit(x, y, epochs=3, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=7)
    pred = model.predict(x)
    assert loss == pytest.approx(SoftmaxCrossEntropy().forward(pred, y), rel=1e-5)
    assert acc == pytest.approx(np.mean(model.predict_classes(x) == y))
    assert model.evaluate(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD())  # no metrics: the loss alone
    assert model.evaluate(x, y) == pytest.approx(loss, rel=1e-5)


def test_predict_is_batched_inference():
    x, y = blobs(n=50)
    model = mlp(extra=(L.BatchNorm(), L.Dropout(0.5)))
    model.fit(x, y, epochs=2, verbose=0)
    state = {k: v.copy() for k, v in model.get_state().items()}
    pred = model.predict(x, batch_size=7)
    assert pred.shape == (50, 3) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, model.forward(x, training=False), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pred, model.predict(x, batch_size=7))  # no dropout, no randomness
    for k, v in model.get_state().items():
        np.testing.assert_array_equal(v, state[k])  # running statistics untouched
    np.testing.assert_array_equal(model.predict_classes(x), pred.argmax(axis=1))
    assert model.predict(x.astype(np.float64)).dtype == np.float32  # inputs cast to the model dtype


def test_predict_classes_for_a_single_output():
    model = hp.Sequential([L.Dense(1), L.Sigmoid()], seed=0, input_shape=(2,))
    model.layers[0].params["W"] = np.array([[1.0], [0.0]], np.float32)
    x = np.array([[-3.0, 0.0], [3.0, 0.0], [0.5, 9.0]], np.float32)
    np.testing.assert_array_equal(model.predict_classes(x), [0, 1, 1])


# ------------------------------------------------------------------------------- early stopping
def run_scripted(values, epochs=10, **kwargs):
    x, y = blobs()
    model = mlp()
    script = Script("score", values)
    stopper = EarlyStopping(monitor="score", **kwargs)
    history = model.fit(x, y, epochs=epochs, callbacks=[script, stopper], verbose=0)
    return model, script, stopper, history


SCORES = [5, 4, 3, 3.5, 3.2, 2.0, 1, 1, 1, 1, 1, 1]
SLOW = [5, 4, 3.95, 3.91, 3.5, 3.45, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize("values, patience, min_delta, stopped_epoch", [
    (SCORES, 0, 0.0, 3),  # patience 0: the first epoch without improvement stops
    (SCORES, 2, 0.0, 4),  # best at epoch 2, then two bad epochs
    (SCORES, 3, 0.0, 9),  # survives 3 and 4; 6 is the best; 7, 8, 9 are bad
    (SLOW, 1, 0.1, 2),  # 3.95 is not better than 4 by more than 0.1
    (SLOW, 2, 0.1, 3),
    (SLOW, 3, 0.1, 9),  # 3.5 and 3 are improvements; 3.45 is not
    (list(range(12, 0, -1)), 0, 0.0, None),  # always improving: never stops
])
def test_early_stopping_stops_at_the_right_epoch(values, patience, min_delta, stopped_epoch):
    """Keras semantics: stop after ``patience`` consecutive epochs without an improvement of more
    than ``min_delta``."""
    _, _, stopper, history = run_scripted(values, epochs=len(values), patience=patience, min_delta=min_delta)
    assert stopper.stopped_epoch == stopped_epoch
    assert len(history.epoch) == (len(values) if stopped_epoch is None else stopped_epoch + 1)


def test_early_stopping_restores_the_best_weights():
    model, script, stopper, history = run_scripted([5, 4, 3, 3.5, 3.2, 3.1, 1], patience=3,
                                                   restore_best_weights=True)
    assert len(history.epoch) == 6 and stopper.best_epoch == 2 and stopper.best == 3
    best = script.weights[2]
    assert not np.array_equal(best["0.Dense/W"], script.weights[-1]["0.Dense/W"])
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, best[k])
    # without restore_best_weights the last weights stay
    model, script, _, _ = run_scripted([5, 4, 3, 3.5, 3.2, 3.1, 1], patience=3)
    np.testing.assert_array_equal(model.get_weights()["0.Dense/W"], script.weights[-1]["0.Dense/W"])


def test_early_stopping_on_a_real_rising_validation_loss():
    """Noisy labels, few samples, a large learning rate: the validation loss soon rises."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 10)).astype(np.float32)
    y = rng.integers(0, 3, 80)
    model = hp.Sequential([L.Dense(64), L.ReLU(), L.Dense(3)], seed=0)
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(lr=0.5))
    script = Script("unused", [0.0] * 100)  # records the weights
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x[:60], y[:60], epochs=100, batch_size=10, validation_data=(x[60:], y[60:]),
                        callbacks=[script, stopper], verbose=0)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == best + 3 < 100  # stopped two epochs after the best
    assert stopper.best_epoch == best and min(val[best + 1:]) >= val[best]
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, script.weights[best][k])
    assert model.evaluate(x[60:], y[60:]) == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_mode_and_missing_metric():
    assert EarlyStopping(monitor="val_accuracy").mode == "max"
    assert EarlyStopping().mode == "min"
    _, _, stopper, history = run_scripted([0.5, 0.6, 0.55, 0.58, 0.9], mode="max", patience=1)
    assert len(history.epoch) == 3 and stopper.best == 0.6
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="largest")
    x, y = blobs()
    with pytest.raises(KeyError, match="validation_data"):
        mlp().fit(x, y, epochs=2, callbacks=[EarlyStopping(monitor="val_loss")], verbose=0)


# ------------------------------------------------------------------------------- readable errors
def test_labels_out_of_range_mention_the_range():
    x, y = blobs()
    y = y.copy()
    y[5] = 3
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes; found \[3\]"):
        mlp().fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        mlp().fit(x, -y, epochs=1, verbose=0)


@pytest.mark.parametrize("y, match", [
    (np.zeros((60, 2, 2), dtype=int), r"class indices \(N,\) or one-hot"),
    (np.eye(5)[np.arange(60) % 5], "5 columns but the model predicts 3 classes"),
    (np.zeros(59, dtype=int), "x has 60 samples but y has 59"),
])
def test_wrong_targets(y, match):
    x, _ = blobs()
    with pytest.raises(ValueError, match=match):
        mlp().fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(bad):
    x, y = blobs()
    x[3, 2] = bad
    for call in (lambda m: m.fit(x, y, verbose=0), lambda m: m.predict(x), lambda m: m.evaluate(x, y)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            call(mlp(input_shape=(4,)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_diverging_loss_mentions_the_learning_rate():
    # NumPy warns about the overflow (in the matmul) before the loss check raises; under
    # ``-W error`` that warning would surface first, hence the filters above.
    x, y = blobs()
    model = mlp(lr=1e30)
    with pytest.raises(FloatingPointError, match=r"learning rate \(1e\+30\)"):
        model.fit(x * 100, y, epochs=5, verbose=0)


def test_calls_before_compile():
    x, y = blobs()
    model = hp.Sequential([L.Dense(3)])
    with pytest.raises(RuntimeError, match=r"fit: call model.compile"):
        model.fit(x, y)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(x, y)
    model.compile(loss="mse")  # default optimizer: SGD
    with pytest.raises(TypeError, match="Callback"):
        mlp().fit(x, y, callbacks=[lambda epoch: None], verbose=0)


# ------------------------------------------------------------------------------- digits
def test_mlp_learns_digits(capsys):
    from handprop.data import load_digits

    (x_train, y_train), (x_test, y_test) = load_digits(test_fraction=0.2, seed=0)
    assert x_train.shape[1:] == (64,) and 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert len(x_train) + len(x_test) == 1797 and set(np.unique(y_train)) == set(range(10))
    model = hp.Sequential([L.Dense(64), L.ReLU(), L.Dense(10)], seed=0)
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(lr=0.1), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=30, batch_size=32, validation_data=(x_test, y_test),
                        verbose=0)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test)
    with capsys.disabled():
        print(f"\n[digits] MLP 64-64-10, SGD lr 0.1, 30 epochs: test accuracy {acc:.4f}, "
              f"loss {loss:.4f}, {seconds:.2f} s")
    assert acc >= 0.95
    assert history.history["val_accuracy"][-1] == pytest.approx(acc)


def test_binary_accuracy_thresholds_logits_at_zero():
    model = hp.Sequential([hp.layers.Dense(1)], seed=0, input_shape=(2,))
    model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.SGD(0.1),
                  metrics=["accuracy"])
    model.layers[0].params["W"][...] = np.array([[1.0], [0.0]])
    x = np.array([[0.3, 0.0], [-0.3, 0.0], [2.0, 0.0]])  # logits 0.3, -0.3, 2 -> classes 1, 0, 1
    y = np.array([1, 0, 1])
    assert model.evaluate(x, y)[1] == 1.0  # a 0.5 threshold would call the first sample class 0
    np.testing.assert_array_equal(model.predict_classes(x), y)


def test_bad_input_is_reported_in_words():
    model = mlp()
    model.compile(loss=SoftmaxCrossEntropy(), optimizer=SGD(0.1))
    x, y = blobs()
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        model.fit(x[:10], y[:10], validation_split=0.01, verbose=0)
    with pytest.raises(TypeError, match="must be numeric"):
        model.predict(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(ValueError, match="targets y are missing"):
        model.fit(x, None, verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        model.predict(np.zeros((0, x.shape[1])))
    # a plain list of rows is one input, not a list of inputs
    assert model.predict(x[:5].tolist()).shape == (5, 3)


def test_forward_casts_to_the_model_dtype():
    model = mlp(input_shape=(4,))
    assert model(np.ones((2, 4))).dtype == np.float32  # float64 input: no silent promotion
    assert model(np.ones((2, 4), dtype=np.int64)).dtype == np.float32


def test_training_skips_the_input_gradient_of_the_first_layer():
    """train_step asks the first layer for no dL/dx (nobody uses it); the weights it produces are
    exactly those of a full backward pass."""
    x, y = blobs()
    a, b = mlp(input_shape=(4,)), mlp(input_shape=(4,))
    a.train_step(x[:16], y[:16])
    pred = b.forward(x[:16])
    b.loss.forward(pred, y[:16])
    dx = b.backward(b.loss.backward())  # the default: the input gradient is computed
    assert dx.shape == (16, 4)
    b.optimizer.step(b.named_params(), b.named_grads())
    for k, v in a.named_params().items():
        np.testing.assert_array_equal(v, b.named_params()[k])
    assert a.backward(np.ones((16, 3), np.float32), input_grad=False) is None


@pytest.mark.skipif(not hp.backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("shape", [(4, 5), (4, 3, 5, 5)])
def test_prelu_numpy_and_numba_paths_agree(shape):
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    out = {}
    for engine in ("numpy", "numba"):
        layer = L.PReLU()
        layer.build(shape[1:], dtype=np.float64)
        layer.params["alpha"] = rng.random(layer.params["alpha"].shape) if not out else out["numpy"][3]
        with hp.engine(engine):
            out[engine] = (layer.forward(x), layer.backward(dy), layer.grads["alpha"].copy(), layer.params["alpha"])
    for u, v in zip(out["numpy"][:3], out["numba"][:3]):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_early_stopping_maximizes_scores_by_name():
    from handprop.callbacks import EarlyStopping, auto_mode

    for name in ("val_auc", "val_dice", "val_accuracy", "acc", "val_sensitivity", "f1"):
        assert auto_mode(name) == "max", name
    for name in ("val_loss", "loss", "val_mse"):
        assert auto_mode(name) == "min", name
    assert EarlyStopping(monitor="val_auc").mode == "max"


def test_a_float32_layer_computes_in_float32_on_every_engine():
    layer = L.Dense(3)
    layer.build((4,), rng=0)
    assert layer.forward(np.ones((2, 4), np.float64)).dtype == np.float32
