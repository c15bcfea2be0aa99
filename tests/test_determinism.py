"""Same seed, same thread count, same machine -> the same bits, on the default (numba) engine.

Every parallel reduction of the engine has a fixed partition (pieces that depend only on the
shapes and the thread count) and a fixed order (partial sums added in piece order). These tests
would catch a reduction summed in the order threads finish: before the fix, Winograd's weight
gradient summed per *thread* and gave 2-3 distinct results in 20 identical calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from handprop.kernels import numba_cpu  # noqa: E402
from handprop.kernels.geometry import ConvGeometry, PoolGeometry  # noqa: E402

SAME = ConvGeometry((1, 1), (1, 1), (1, 1))


@pytest.fixture(params=[2, 4], ids=["2-threads", "4-threads"])
def threads(request, monkeypatch):
    """The engine at 2 or 4 threads, even on a machine with fewer cores (then they take turns)."""
    from handprop import threads

    monkeypatch.setattr(threads, "_engine_threads", request.param)
    return request.param


@pytest.mark.parametrize("x_shape, W_shape, geometry", [
    ((4, 16, 64, 64), (16, 16, 3, 3), SAME),  # Winograd, whole images per chunk
    ((1, 16, 96, 64), (16, 16, 3, 3), SAME),  # Winograd, bands of one image
    ((4, 8, 32, 32), (12, 8, 5, 5), ConvGeometry((1, 1), (2, 2), (1, 1))),  # im2col, columns kept
    ((4, 16, 64, 64), (16, 16, 1, 1), ConvGeometry((1, 1), (0, 0), (1, 1))),  # 1 x 1 GEMMs
], ids=["winograd-images", "winograd-bands", "im2col", "gemm"])  # fmt: skip
def test_conv_forward_and_backward_give_the_same_bits_20_times(threads, x_shape, W_shape, geometry):
    rng = np.random.default_rng(0)
    x, W, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, W_shape, W_shape[0]))
    for training in (True, False):  # False: the weight gradient packs the columns itself
        results = set()
        for _ in range(20):
            y, cache = numba_cpu.conv2d_forward(x, W, b, geometry, training)
            dy = np.sin(y)  # depends on y: a differing forward pass shows too
            results.add(b"".join(a.tobytes() for a in (y, *numba_cpu.conv2d_backward(dy, cache))))
        assert len(results) == 1, f"{len(results)} distinct results in 20 identical calls"


def test_pooling_upsampling_and_prelu_give_the_same_bits(threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 64, 64)).astype(np.float32)
    alpha = np.full(16, 0.25, np.float32)
    results = set()
    for _ in range(10):
        out = []
        for forward, backward, args in ((numba_cpu.maxpool2d_forward, numba_cpu.maxpool2d_backward,
                                         (PoolGeometry((2, 2), (2, 2), (0, 0)),)),
                                        (numba_cpu.avgpool2d_forward, numba_cpu.avgpool2d_backward,
                                         (PoolGeometry((3, 3), (2, 2), (1, 1)),)),
                                        (numba_cpu.upsample2d_forward, numba_cpu.upsample2d_backward, ((2, 2),))):
            y, cache = forward(x, *args)
            out += [y, backward(np.cos(y), cache)]
        y, cache = numba_cpu.prelu_forward(x, alpha)
        out += [y, *numba_cpu.prelu_backward(np.cos(y), cache)]
        results.add(b"".join(a.tobytes() for a in out))
    assert len(results) == 1


# ----------------------------------------------------------------------------- fresh processes
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import handprop as hp

    mode, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hp.set_num_threads(threads)
    L = hp.layers
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 48, 48), dtype=np.float32)  # 48 wide: the U-Net's first level runs Winograd
    y = (rng.random((8, 1, 48, 48)) > 0.7).astype(np.float32)

    def unet():
        model = hp.architectures.unet(1, depth=2, width=8, seed=0)
        model.compile(hp.losses.BinaryCrossEntropy(from_logits=True), hp.optimizers.Adam(lr=1e-2))
        return model

    def convnet():  # the tutorial ConvNet (tests/test_tutorial_convnet.py)
        model = hp.Sequential([
            L.Conv2D(20, 5), L.PReLU(), L.MaxPool2D(2), L.Conv2D(50, 3), L.PReLU(), L.MaxPool2D(2),
            L.Flatten(), L.Dense(2000), L.PReLU(), L.Dense(135)], seed=0, input_shape=(3, 29, 29))
        model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.01, momentum=0.9))
        return model

    result = {}
    straight = unet()
    history = straight.fit(x, y, epochs=2, batch_size=4, verbose=0)
    result["unet/loss"] = np.array(history.history["loss"])
    result["unet/pred"] = straight.predict(x[:2])
    result.update({"unet/" + k: v for k, v in straight.get_weights().items()})
    xc = rng.standard_normal((16, 3, 29, 29)).astype(np.float32)
    model = convnet()
    history = model.fit(xc, rng.integers(0, 135, 16), epochs=2, batch_size=8, verbose=0)
    result["convnet/loss"] = np.array(history.history["loss"])
    result.update({"convnet/" + k: v for k, v in model.get_weights().items()})
    if mode == "first":  # stop after one epoch ...
        half = unet()
        half.fit(x, y, epochs=1, batch_size=4, verbose=0)
        half.save(out + "/half.safetensors")
    else:  # ... and go on in another process
        resumed = hp.load_model(out + "/half.safetensors")
        history = resumed.fit(x, y, epochs=1, batch_size=4, verbose=0)
        result["resumed/loss"] = np.array(history.history["loss"])
        result.update({"resumed/" + k: v for k, v in resumed.get_weights().items()})
    np.savez(out + "/" + mode + ".npz", **result)
""")


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_two_fresh_processes_train_the_same_bits_and_resume_exactly(tmp_path, threads):
    """A small U-Net (Adam, Winograd at its first level) and the tutorial ConvNet (SGD with
    momentum, PReLU, im2col), each trained in two fresh processes with 1, 2 or 4 engine threads
    (4 take turns on a 2-core machine, which is when an unordered reduction shows): the same
    weights, losses and predictions, bit for bit; and a U-Net stopped after one epoch, saved,
    loaded in the second process and trained on equals the uninterrupted run."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "NUMBA_NUM_THREADS": str(max(threads, int(os.environ.get("NUMBA_NUM_THREADS", "1"))))}
    for mode in ("first", "second"):
        subprocess.run([sys.executable, "-W", "error", str(script), mode, str(tmp_path), str(threads)], check=True,
                       env=env, timeout=300)
    first, second = np.load(tmp_path / "first.npz"), np.load(tmp_path / "second.npz")
    shared = [k for k in first.files if not k.startswith("resumed/")]
    assert sorted(shared) == sorted(k for k in second.files if not k.startswith("resumed/"))
    assert any(k.startswith("unet/") and k.endswith("/W") for k in shared)
    for key in shared:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert not np.array_equal(first["unet/loss"][0], first["unet/loss"][1])  # it did train
    for key in (k for k in shared if k.startswith("unet/") and k not in ("unet/loss", "unet/pred")):
        np.testing.assert_array_equal(second["resumed/" + key[len("unet/"):]], first[key], err_msg=key)
    np.testing.assert_array_equal(second["resumed/loss"][0], first["unet/loss"][1])
