"""Graph (functional) models: fan-out gradients add up, U-Net passes a whole-model gradient check."""

import numpy as np
import pytest

import handprop as hp

L = hp.layers


def small_unet(c_in=1, base=2):
    """A two-level U-Net: conv blocks, max-pool down, upsample, concatenate the skip, 1×1 head."""

    def block(x, f):
        x = L.Conv2D(f, 3, padding="same")(x)
        return L.ReLU()(x)

    inp = hp.Input((c_in, 8, 8))
    e1 = block(inp, base)
    e2 = block(L.MaxPool2D(2)(e1), 2 * base)
    up = L.Conv2DTranspose(base, 2, stride=2)(e2)
    d1 = block(L.Concatenate()([up, e1]), base)
    out = L.Conv2D(1, 1)(d1)
    return hp.Model(inp, out, seed=0, name="unet")


@pytest.mark.parametrize("engine", ["reference", "numpy"])
def test_unet_whole_model_gradient_check(engine):
    model = small_unet()
    model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.SGD(0.1))
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 8, 8))
    y = (rng.random((2, 1, 8, 8)) > 0.5).astype(np.float64)
    with hp.engine(engine):
        report = hp.gradcheck.check_model(model, x, y, max_elements=40)
    assert report.passed, report.table()
    assert {r["name"] for r in report.rows} >= {"x", "0.Conv2D/W", "5.Conv2DTranspose/W"}


def test_fan_out_gradients_are_summed():
    # y = Dense(h) + h  where h = Dense(x): h feeds two layers; dL/dh must be the sum of both paths
    inp = hp.Input((4,))
    h = L.Dense(3)(inp)
    out = L.Add()([L.Dense(3)(h), h])
    model = hp.Model(inp, out, seed=3)
    x = np.random.default_rng(0).standard_normal((5, 4))
    model.cast(np.float64)
    model.forward(x)
    dy = np.ones((5, 3))
    dx = model.backward(dy)
    W1, W2 = model.layers_list()[0].params["W"], model.layers_list()[1].params["W"]
    # dL/dh = dy @ W2.T + dy ; dL/dx = dL/dh @ W1.T
    expected = (dy @ W2.T + dy) @ W1.T
    np.testing.assert_allclose(dx, expected, rtol=1e-12)


def test_multi_input_model_trains_and_checks():
    a, b = hp.Input((6,), name="a"), hp.Input((3,), name="b")
    h = L.Tanh()(L.Dense(5)(a))
    out = L.Dense(2)(L.Concatenate()([h, b]))
    model = hp.Model([a, b], out, seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=hp.optimizers.SGD(0.1), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((64, 6)), rng.standard_normal((64, 3))
    y = (xa[:, 0] + xb[:, 0] > 0).astype(int)
    hist = model.fit([xa, xb], y, epochs=15, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.predict([xa, xb]).shape == (64, 2)
    model.compile(loss="softmax_cross_entropy", optimizer=hp.optimizers.SGD(0.1))
    report = hp.gradcheck.check_model(model, [xa[:4], xb[:4]], y[:4])
    assert report.passed, report.table()
    assert [r["name"] for r in report.rows][:2] == ["x0", "x1"]


def test_graph_errors_are_readable():
    inp = hp.Input((3, 8, 8))
    with pytest.raises(ValueError, match="Concatenate"):
        L.Concatenate()([L.Conv2D(2, 3)(inp), inp])  # 6x6 vs 8x8
    dense = L.Dense(2)
    with pytest.raises(ValueError, match="expects \\(N, features\\)"):
        dense(inp)
    conv = L.Conv2D(2, 3)  # calling a layer twice shares its weights; with another channel count it cannot
    twice = L.Add()([conv(inp), conv(L.Concatenate()([inp, L.Conv2D(2, 1)(inp)]))])
    with pytest.raises(ValueError, match=r"Conv2D: already built for inputs \(N, 3, 8, 8\).*\(N, 5, 8, 8\)"):
        hp.Model(inp, twice)
    other = hp.Input((3, 8, 8), name="other")
    with pytest.raises(ValueError, match="not listed"):
        hp.Model(inp, L.Add()([L.ReLU()(inp), L.ReLU()(other)]))


def test_concatenate_and_add_match_torch(torch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    cat = L.Concatenate()
    y = cat.forward([a, b])
    dy = rng.standard_normal(y.shape)
    da, db = cat.backward(dy)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.cat([ta, tb], dim=1).backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, torch.cat([ta, tb], dim=1).detach().numpy())
    np.testing.assert_array_equal(da, ta.grad.numpy())
    np.testing.assert_array_equal(db, tb.grad.numpy())

    add = L.Add()
    c = rng.standard_normal(a.shape)
    y = add.forward([a, c])
    dy = rng.standard_normal(y.shape)
    grads = add.backward(dy)
    ta, tc = torch.tensor(a, requires_grad=True), torch.tensor(c, requires_grad=True)
    (ta + tc).backward(torch.tensor(dy))
    np.testing.assert_allclose(y, a + c)
    np.testing.assert_array_equal(grads[0], ta.grad.numpy())
    np.testing.assert_array_equal(grads[1], tc.grad.numpy())
    assert grads[0] is not dy and grads[1] is not grads[0]  # fresh arrays, never dy itself
