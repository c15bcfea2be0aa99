"""fit/evaluate on batch sources, sample weights, class weights and masked per-pixel losses."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop.batches import class_weights, combine_weights

L = hp.layers


def segmenter(seed=0):
    model = hp.Sequential([L.Conv2D(4, 3, padding="same"), L.ReLU(), L.Conv2D(1, 1)], seed=seed,
                          input_shape=(1, None, None))
    model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    return model


def toy_maps(n, seed=0, size=12):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)  # "vessels": bright pixels
    fov = np.zeros((n, size, size), bool)
    fov[:, 2:-2, 2:-2] = True
    return x, y, fov


class EpochSampler:
    """A source with epoch(e): fresh random batches each epoch, derived from the epoch number."""

    def __init__(self, x, y, w, batch=4, batches=3):
        self.x, self.y, self.w, self.batch, self.batches = x, y, w, batch, batches
        self.seen = []

    def __len__(self):
        return self.batches

    def epoch(self, e):
        self.seen.append(e)
        rng = np.random.default_rng(e)
        for _ in range(self.batches):
            idx = rng.choice(len(self.x), self.batch, replace=False)
            yield self.x[idx], self.y[idx], self.w[idx]


def test_fit_on_a_sampler_draws_each_epoch_and_learns():
    x, y, fov = toy_maps(24)
    model = segmenter()
    sampler = EpochSampler(x, y, fov)
    before = model.evaluate(x, y, sample_weight=fov)[0]
    hist = model.fit(sampler, epochs=10, verbose=0, validation_data=(x[:8], y[:8], fov[:8]))
    assert sampler.seen == list(range(10))
    assert len(hist.history["loss"]) == 10 and "val_loss" in hist.history
    assert model.evaluate(x, y, sample_weight=fov)[0] < 0.8 * before
    again = segmenter()  # the same epochs give the same batches: the same weights
    again.fit(EpochSampler(x, y, fov), epochs=10, verbose=0)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, again.get_weights()[k])


def test_list_of_batches_generators_and_bad_sources():
    x, y, _ = toy_maps(8)
    model = segmenter()
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    assert len(model.fit(batches, epochs=2, verbose=0).history["loss"]) == 2
    gen = ((x[i % 8:i % 8 + 2], y[i % 8:i % 8 + 2]) for i in range(0, 1000, 2))
    model.fit(gen, epochs=2, steps_per_epoch=3, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(iter(batches), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"tuples \(x, y\) or \(x, y, weight\)"):
        model.fit([(x[:4],)], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="come from the source"):
        model.fit(batches, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        model.fit(EpochSampler(x, y, y, batches=0), epochs=1, verbose=0)
    assert np.isfinite(model.evaluate(batches)[0])


def test_pixels_outside_the_mask_do_not_count():
    """Whatever the targets say outside the FOV, training with the FOV as weights gives the same model."""
    x, y, fov = toy_maps(16)
    weights = []
    for garbage in (0.0, 1.0):
        yy = y.copy()
        yy[:, 0][~fov] = garbage
        model = segmenter()
        model.fit(x, yy, sample_weight=fov, epochs=2, batch_size=4, verbose=0)
        weights.append(model.get_weights())
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k])


def test_evaluate_averages_exactly_over_batches():
    x, y, fov = toy_maps(10)
    model = segmenter()
    w = fov * np.random.default_rng(1).uniform(0.5, 2.0, fov.shape)
    whole = model.evaluate(x, y, batch_size=10, sample_weight=w)[0]
    assert model.evaluate(x, y, batch_size=3, sample_weight=w)[0] == pytest.approx(whole, rel=1e-6)
    pred = model.predict(x)
    assert whole == pytest.approx(hp.losses.BinaryCrossEntropy(from_logits=True).forward(pred, y, w), rel=1e-6)


def test_class_weights():
    np.testing.assert_array_equal(class_weights(np.array([0, 2, 1, 2]), {2: 3.0}), [1, 3, 1, 3])
    np.testing.assert_array_equal(class_weights(np.eye(3)[[2, 0]], {2: 5.0}), [5, 1])
    maps = np.array([[[0.0, 1.0], [1.0, 0.0]]])  # (N, H, W) 0/1 maps, and (N, 1, H, W)
    np.testing.assert_array_equal(class_weights(maps, {1: 4.0}), [[[1, 4], [4, 1]]])
    np.testing.assert_array_equal(class_weights(maps[:, None], {1: 4.0}), [[[[1, 4], [4, 1]]]])
    with pytest.raises(ValueError, match="hard labels"):
        class_weights(np.array([0.2, 0.8]), {1: 2.0})
    np.testing.assert_array_equal(combine_weights(np.ones((2, 3)), np.array([2.0, 3.0])), [[2, 2, 2], [3, 3, 3]])
    assert combine_weights(None, None) is None


def test_class_weight_in_fit_equals_the_same_sample_weight():
    x, y, fov = toy_maps(8)
    a, b = segmenter(), segmenter()
    a.fit(x, y, class_weight={1: 3.0}, epochs=1, batch_size=4, verbose=0, shuffle=False)
    b.fit(x, y, sample_weight=np.where(y[:, 0] == 1, 3.0, 1.0), epochs=1, batch_size=4, verbose=0, shuffle=False)
    for k, v in a.get_weights().items():
        np.testing.assert_allclose(v, b.get_weights()[k], rtol=1e-6)


def test_multiclass_segmentation_with_softmax_cross_entropy_maps():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 1, 8, 8)).astype(np.float32)
    labels = np.digitize(x[:, 0], [-0.5, 0.5])  # three classes per pixel
    model = hp.Sequential([L.Conv2D(3, 1)], seed=0, input_shape=(1, None, None))
    model.compile(loss="categorical_crossentropy", optimizer=hp.optimizers.Adam(0.1), metrics=["accuracy"])
    hist = model.fit(x, labels, epochs=30, batch_size=4, verbose=0)
    assert hist.history["accuracy"][-1] > 0.8 > hist.history["accuracy"][0]


# ------------------------------------------------------------------------------- review regressions
def test_fov_sample_weight_and_class_weight_together():
    """A (N, H, W) FOV for (N, 1, H, W) targets times a class weight: one weight per pixel, not (N, N, H, W)."""
    x, y, fov = toy_maps(4)
    w = combine_weights(fov.astype(np.float64), class_weights(y, {1: 3.0}))
    assert w.shape == y.shape
    np.testing.assert_array_equal(w[:, 0], np.where(y[:, 0] == 1, 3.0, 1.0) * fov)
    model = segmenter()
    model.fit(x, y, sample_weight=fov, class_weight={1: 3.0}, epochs=1, batch_size=2, verbose=0)


def test_training_metrics_count_only_the_pixels_inside_the_mask():
    x, y, fov = toy_maps(6)
    model = segmenter()
    pred = model.predict(x)
    inside = hp.metrics.accuracy(pred, y, threshold=0.0, mask=fov[:, None])
    scores = model.evaluate(x, y, sample_weight=fov, return_dict=True)
    assert scores["accuracy"] == pytest.approx(inside, rel=1e-6)
    assert scores["accuracy"] != pytest.approx(hp.metrics.accuracy(pred, y, threshold=0.0), rel=1e-6)


def test_validation_uses_the_batch_size_given():
    sizes = []
    x, y, fov = toy_maps(8)
    model = segmenter()
    real = model.forward

    def spy(xb, training=True):
        if not training:
            sizes.append(len(xb))
        return real(xb, training)

    model.forward = spy
    model.fit(x, y, epochs=1, batch_size=4, validation_data=(x, y), verbose=0)
    assert max(sizes) == 4
    sizes.clear()
    model.fit(x, y, epochs=1, batch_size=4, validation_data=(x, y), validation_batch_size=8, verbose=0)
    assert max(sizes) == 8
