"""The third reliability pass (issue 21), data side: each test reproduces one probe of the break-it
pass that gave a silent wrong number, a raw traceback or lost output, and checks the clear error
(or the right result) that replaced it. Named after the issue's case numbers."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import handprop as hp
from handprop.batches import combine_weights
from handprop.data import load_drive, save_drive_layout, synthetic_retina
from handprop.data.drive import MAX_PIXELS

L = hp.layers
SIZE = (40, 44)


@pytest.fixture(scope="module")
def retina():
    return synthetic_retina(3, seed=1, size=SIZE)


def drive_folder(tmp_path, data, split="training"):
    save_drive_layout(data, tmp_path, split)
    return tmp_path / split


def segmenter(seed=0):
    model = hp.Sequential([L.Conv2D(2, 3, padding="same"), L.ReLU(), L.Conv2D(1, 1)], seed=seed)
    model.compile(hp.losses.BinaryCrossEntropy(from_logits=True), hp.optimizers.SGD(lr=0.01))
    return model


# ----------------------------------------------------------------------------- case 1
def test_case01_swapped_mask_refused():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.05, 0.95, (2, 1, 3, 5)).astype(np.float32)
    truth = (rng.uniform(size=(2, 3, 5)) > 0.5).astype(np.float32)
    swapped = np.ones((2, 5, 3), np.float32)  # as many elements as (2, 3, 5), height and width swapped
    loss = hp.losses.BinaryCrossEntropy()
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: weights of shape \(2, 5, 3\).*swapped"):
        loss(pred, truth, swapped)
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: prediction has shape"):
        loss(pred, truth.transpose(0, 2, 1))  # swapped targets too
    assert loss(pred, truth, np.ones((2, 3, 5))) == pytest.approx(loss(pred, truth))  # (N, H, W) for (N, 1, H, W)
    model = segmenter()
    x = rng.standard_normal((2, 1, 3, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"fit: sample_weight has shape \(2, 5, 3\) and the target array y shape"):
        model.fit(x, truth, sample_weight=swapped, verbose=0)
    with pytest.raises(ValueError, match=r"roc_auc: the mask has shape \(3, 2\) and the score array shape \(2, 3\)"):
        hp.metrics.roc_auc(np.arange(6.0).reshape(2, 3), np.array([[0, 1, 0], [1, 0, 1]]), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"dice: the ground truth has shape \(3, 2\) and the score array"):
        hp.metrics.dice(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="do not fit each other"):
        combine_weights(np.ones((2, 3, 5)), np.ones((2, 5, 3)))


# ----------------------------------------------------------------------------- case 2
def test_case02_nan_scores_and_thresholds_refused():
    with pytest.raises(ValueError, match="roc_auc: 1 of 4 scores are NaN"):
        hp.metrics.roc_auc([0.1, np.nan, 0.8, 0.3], [0, 1, 1, 0])
    with pytest.raises(ValueError, match="roc_auc: 4 of 4 scores are NaN"):
        hp.metrics.roc_auc([np.nan] * 4, [0, 1, 1, 0])
    with pytest.raises(ValueError, match="dice: threshold is NaN"):
        hp.metrics.dice([0.1, 0.9], [0, 1], threshold=np.nan)
    prob = np.full((1, 4, 4), 0.7, np.float32)
    prob[0, 1, 1] = np.nan
    truth = np.eye(4, dtype=np.uint8)[None]
    with pytest.raises(ValueError, match="segmentation_report: 1 of 16 scores are NaN"):
        hp.metrics.segmentation_report(prob, truth)
    fov = np.ones((1, 4, 4), bool)
    fov[0, 1, 1] = False  # a NaN outside the mask does not count
    assert hp.metrics.segmentation_report(prob, truth, fov)["mean"]["accuracy"] == pytest.approx(3 / 15)
    assert hp.metrics.roc_auc([-np.inf, 0.2, np.inf], [0, 0, 1]) == 1.0  # ±inf still ranks


# ----------------------------------------------------------------------------- case 3
def test_case03_all_black_validation_annotation_refused(tmp_path, retina, capsys):
    vessels = retina.vessels.copy()
    vessels[1] = 0
    root = tmp_path / "drive"
    save_drive_layout(hp.data.RetinaData(retina.images, vessels, retina.fov, retina.ids), root, "training")
    with pytest.raises(hp.DataError, match=r"22_manual1.gif has no vessel pixel inside the FOV"):
        load_drive(root, "training")
    from handprop.cli import main

    with pytest.raises(SystemExit) as stop:  # the demo stops before training, naming the file
        main(["demo", "--drive", str(root), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and "22_manual1.gif has no vessel pixel" in capsys.readouterr().err
    # data built in memory (not loaded) is checked where the validation patients choose the epoch
    val = hp.data.RetinaData(retina.images[1:2], vessels[1:2], retina.fov[1:2], ["val_patient"])
    x = retina.images[:, 1:2]
    with pytest.raises(hp.DataError, match="val_patient has no vessel"):
        hp.segmentation.train_segmenter(segmenter(), x[:1], retina[:1], x[1:2], val, epochs=1, steps=1, tile=8,
                                        batch_size=2, verbose=0)
    with pytest.raises(hp.DataError, match="KeepBestOnValidation: the annotation of val_patient"):
        hp.segmentation.KeepBestOnValidation(x[1:2], val)


# ----------------------------------------------------------------------------- case 4
def test_case04_float_tiff_nan_pixels_and_noisy_fov(tmp_path, retina):
    base = drive_folder(tmp_path, retina[:1])
    gray = retina.images[0, 1].astype(np.float32)  # in [0, 1]
    Image.fromarray(gray, mode="F").save(base / "images/21_training.tif")
    loaded = load_drive(tmp_path, "training")
    np.testing.assert_allclose(loaded.images[0, 0], gray)  # not divided by 255
    white = np.where(retina.fov[0], 255, 254).astype(np.uint8)  # an all-white FOV mask with 254/255 noise
    Image.fromarray(white).save(base / "mask/21_training_mask.gif")
    assert load_drive(tmp_path, "training").fov.all()  # all inside, not half the FOV
    gray[3, 4] = np.nan
    Image.fromarray(gray, mode="F").save(base / "images/21_training.tif")
    with pytest.raises(hp.DataError, match=r"21_training.tif has 1 NaN or infinite pixels"):
        load_drive(tmp_path, "training")


# ----------------------------------------------------------------------------- case 6
def test_case06_all_zero_validation_weights_never_best(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 6, 6)).astype(np.float32)
    y = (rng.uniform(size=(4, 6, 6)) > 0.5).astype(np.float32)
    checkpoint = hp.callbacks.ModelCheckpoint(str(tmp_path / "best.safetensors"), save_best_only=True)
    with pytest.raises(ValueError, match="every weight of the validation data is 0.*val_loss is undefined"):
        segmenter().fit(x, y, validation_data=(x, y, np.zeros((4, 6, 6))), callbacks=[checkpoint], verbose=0)
    assert checkpoint.best_epoch is None and not (tmp_path / "best.safetensors").exists()
    assert np.isnan(segmenter().evaluate(x, y, sample_weight=np.zeros(4)))  # a mean over nothing, not 0.0
    val = hp.data.RetinaData(x[:1].repeat(3, 1), (y[:1] > 0).astype(np.uint8), np.zeros((1, 6, 6), bool), ["v"])
    with pytest.raises(hp.DataError, match="KeepBestOnValidation: the annotation of v"):
        hp.segmentation.KeepBestOnValidation(x[:1], val)  # an empty FOV: AUC NaN would have been "best"


# ----------------------------------------------------------------------------- case 7
@pytest.mark.parametrize("scale, match", [(255.0, "must lie in \\[0, 1\\]"), (-1.0, "must lie in \\[0, 1\\]")])
def test_case07_soft_targets_checked(scale, match):
    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    loss = hp.losses.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy: one-hot / soft targets " + match):
        loss(logits, one_hot * scale)
    with pytest.raises(ValueError, match="must sum to 1 over the classes.*sum to 3"):
        loss(logits, np.ones((4, 3), np.float32))
    smooth = one_hot * 0.9 + 0.1 / 3  # label smoothing: still a distribution
    assert loss(logits, smooth) > 0
    assert loss(logits, one_hot) == pytest.approx(loss(logits, np.array([0, 1, 2, 0])))


# ----------------------------------------------------------------------------- case 8
class RecordedSampler:
    """A TileSampler that records which epochs fit asks it for."""

    def __init__(self, sampler):
        self.sampler, self.asked = sampler, []

    def __len__(self):
        return len(self.sampler)

    def epoch(self, i):
        self.asked.append(i)
        return self.sampler.epoch(i)


def test_case08_fit_continues_the_tile_samplers_epochs():
    data = synthetic_retina(2, seed=0, size=(32, 32))
    sampler = RecordedSampler(hp.data.TileSampler(data.images[:, 1:2], data.vessels, data.fov, 8, batch_size=2,
                                                  tiles_per_epoch=2, seed=3))
    model = segmenter()
    model.fit(sampler, epochs=2, verbose=0)
    model.fit(sampler, epochs=1, verbose=0)  # resumed without initial_epoch: epoch 2's tiles, not epoch 0's again
    assert sampler.asked == [0, 1, 2] and model.epochs_trained == 3
    model.fit(sampler, epochs=5, initial_epoch=3, verbose=0)  # told where to go on: the same count
    assert sampler.asked == [0, 1, 2, 3, 4]
    fresh = RecordedSampler(sampler.sampler)
    segmenter().fit(fresh, epochs=3, initial_epoch=2, verbose=0)  # a fresh model (e.g. from a checkpoint)
    assert fresh.asked == [2]


def test_case08_a_loaded_model_continues_the_count(tmp_path):
    data = synthetic_retina(2, seed=0, size=(32, 32))
    sampler = RecordedSampler(hp.data.TileSampler(data.images[:, 1:2], data.vessels, data.fov, 8, batch_size=2,
                                                  tiles_per_epoch=2, seed=3))
    model = segmenter()
    model.fit(sampler, epochs=2, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = hp.load_model(tmp_path / "m.safetensors")
    assert loaded.epochs_trained == 2
    loaded.fit(sampler, epochs=1, verbose=0)  # resumed from the file without initial_epoch: epoch 2's tiles
    assert sampler.asked == [0, 1, 2]


# ----------------------------------------------------------------------------- case 9
@pytest.mark.parametrize("make, error, match", [
    (lambda: hp.data.Elastic(alpha=np.nan), ValueError, r"Elastic: alpha .* must lie in"),
    (lambda: hp.data.Intensity(contrast=1.5), ValueError, r"Intensity: contrast must lie in \[0, 1\)"),
    (lambda: hp.losses.BinaryCrossEntropy(eps=0.6), ValueError, r"BinaryCrossEntropy: eps .* must lie in \(0, 0.5\)"),
    (lambda: hp.inference.blending_window((8, 8), sigma_scale=0), ValueError, "blending_window: sigma_scale"),
    (lambda: hp.data.split_patients(2, (0.6, 0.2, 0.2)), ValueError, "split_patients: 2 .*part 2 would be empty"),
])
def test_case09_bad_parameters_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_case09_fit_on_an_all_frozen_model_refused():
    model = hp.Sequential([L.Dense(4), L.ReLU(), L.Dense(2)], seed=0)
    model.compile(hp.losses.SoftmaxCrossEntropy(), "sgd")
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    model.fit(x, y, verbose=0)  # builds it
    for layer in model.layers:
        layer.trainable = False
    before = model.get_weights()
    with pytest.raises(ValueError, match="fit: .* has no trainable parameter.*layer.trainable = True"):
        model.fit(x, y, verbose=0)
    assert all(np.array_equal(before[k], v) for k, v in model.get_weights().items())


# ----------------------------------------------------------------------------- case 21
def unet_like():
    return hp.segmentation.vessel_unet(in_channels=1, width=2)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.fit(np.ones((4, 3), np.float32), np.array([0, 1, 0, 1]), class_weight={"0": 1}, verbose=0),
     TypeError, r"class_weight keys must be int class indices, got '0'"),
    (lambda m: hp.inference.predict_tiled(unet_like(), np.ones((1, 1, 8, 8), np.float32), tile=(0, 0)),
     ValueError, r"predict_tiled: tile must be an int >= 1"),
    (lambda m: hp.inference.predict_tiled(unet_like(), np.ones((1, 1, 8, 8), np.float32), tile=8, batch_size=0),
     ValueError, "predict_tiled: batch_size must be an int >= 1"),
    (lambda m: hp.inference.predict_padded(unet_like(), np.ones((1, 1, 8, 8), np.float32), multiple=0),
     ValueError, "predict_padded: multiple must be an int >= 1"),
    (lambda m: hp.data.TileSampler(np.ones((1, 1, 8, 8)), np.ones((1, 8, 8)), None, 0), ValueError,
     r"TileSampler: size \(the tile's side, in pixels\) must be an int >= 1"),
    (lambda m: hp.data.Intensity(gamma=-1), ValueError, r"Intensity: gamma must lie in \[0, 1000\]"),
    (lambda m: hp.data.Affine(scale=(np.nan, 1)), ValueError, "Affine: scale must lie in"),
    (lambda m: m.save(""), ValueError, "save: the path is empty"),
    (lambda m: unet_like().predict(np.ones((1, 1, 65, 63), np.float32)), ValueError,
     r"layer 15 .*Concatenate.*divide by the network's total pooling.*predict_padded.*input images are 65x63"),
])
def test_case21_bad_arguments_refused(call, error, match):
    model = hp.Sequential([L.Dense(2)], seed=0)
    model.compile(hp.losses.SoftmaxCrossEntropy(), "sgd")
    with pytest.raises(error, match=match):
        call(model)


# ----------------------------------------------------------------------------- case 14
def png_declaring(path, width, height):
    """A tiny PNG whose header declares ``width x height`` (a decompression bomb's header)."""
    import struct
    import zlib

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR: width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [9800, 15000])  # 96 MP (PIL warns), 225 MP (PIL's DecompressionBombError)
def test_case14_huge_image_refused_from_its_header(tmp_path, retina, side):
    import tracemalloc

    base = drive_folder(tmp_path, retina[:1])
    (base / "images/21_training.tif").unlink()
    png_declaring(base / "images/21_training.png", side, side)
    tracemalloc.start()
    try:
        with pytest.raises(hp.DataError, match=rf"21_training.png .*{MAX_PIXELS:,}.*downscale"):
            load_drive(tmp_path, "training")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6  # refused before decoding (a 9800 x 9800 image is 1.9 GB as float32 RGB)
    with pytest.raises(hp.DataError, match="21_training.png"):
        hp.segmentation.load_images([base / "images/21_training.png"])  # handprop predict IMAGE


# ----------------------------------------------------------------------------- case 18
@pytest.mark.parametrize("name", ["images/21_training.tif", "1st_manual/21_manual1.gif"])
def test_case18_truncated_file_named(tmp_path, retina, name):
    base = drive_folder(tmp_path, retina[:1])
    if name.endswith(".tif"):  # an uncompressed TIFF: PIL opens it and fails while decoding
        Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(base / name)
        stripes = np.repeat((np.arange(300)[:, None] % 10 < 3), 300, axis=1).astype(np.uint8) * 255
        Image.fromarray(stripes).save(base / "1st_manual/21_manual1.gif")
        Image.fromarray(np.full((300, 300), 255, np.uint8)).save(base / "mask/21_training_mask.gif")
    path = base / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    with pytest.raises(hp.DataError, match=rf"{path.name}.*(truncated|not a readable image)"):
        load_drive(tmp_path, "training")
    if name.endswith(".tif"):
        with pytest.raises(hp.DataError, match=rf"handprop predict: {path}.*truncated"):
            hp.segmentation.load_images([path])


# ----------------------------------------------------------------------------- case 17
def tiny_demo(out, **kwargs):
    return hp.segmentation.run_vessel_segmentation(out, n_synthetic=6, epochs=1, steps=1, size=(48, 48), tile=16,
                                                   batch_size=2, verbose=0, figures=False, **kwargs)


def test_case17_second_demo_run_refused_unless_overwrite(tmp_path, capsys, monkeypatch):
    from handprop.cli import main

    out = tmp_path / "out"
    out.mkdir()
    for name in ("metrics.json", "probabilities.npz", "segmentation_synthetic_004.png"):  # an earlier run's outputs
        (out / name).write_text("earlier run")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"already holds an earlier run's outputs \(metrics.json, "
                                              r"probabilities.npz, segmentation_synthetic_004.png\).*--overwrite"):
        tiny_demo(out)
    monkeypatch.setattr(hp.segmentation, "train_segmenter", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--out", str(out)])
    assert stop.value.code == 2 and "already holds an earlier run's outputs" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "earlier run"  # nothing overwritten
    monkeypatch.undo()
    metrics = tiny_demo(out, overwrite=True)
    assert not (out / "segmentation_synthetic_004.png").exists()  # the earlier run's figure is gone
    assert (out / "notes.txt").read_text() == "mine"  # files no run wrote stay
    assert (out / "metrics.json").read_text() != "earlier run" and "auc" in metrics
    assert "--overwrite" in (Path(__file__).parents[1] / "Makefile").read_text().split("\ndemo:")[1].split("\n")[1]


# ----------------------------------------------------------------------------- case 19
@pytest.mark.parametrize("argv, match", [
    (["demo", "digits", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["demo", "digits", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["demo", "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["demo", "digits", "--seed", "-1"], "--seed must be at least 0, got -1"),
])
def test_case19_cli_bad_numbers_refused(argv, match, capsys):
    from handprop.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and match in err and "Traceback" not in err


@pytest.mark.parametrize("task", [[], ["digits"]])
def test_case19_cli_out_a_file_or_unwritable_refused_before_training(tmp_path, capsys, monkeypatch, task):
    from handprop.cli import main

    monkeypatch.setattr(hp.segmentation, "train_segmenter", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(hp.Sequential, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    unwritable = ["/sys/kernel"]  # root may write anywhere else; sysfs refuses everybody
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        unwritable.append(str(locked))
    for out, match in [(str(a_file), f"the output folder {a_file} is a file")] + \
                      [(d, f"cannot write into the output folder {d}") for d in unwritable if os.path.isdir(d)]:
        with pytest.raises(SystemExit) as stop:
            main(["demo", *task, "--out", out, "--epochs", "1"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and match in err and "Traceback" not in err
    with pytest.raises(NotADirectoryError, match="is a file"):
        hp.segmentation.run_prediction("model.safetensors", a_file, images=["x.png"])


# ----------------------------------------------------------------------------- case 11
def test_case11_concurrent_fit_and_predict_refused():
    import copy
    import threading

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 2, 16)

    def mlp():
        model = hp.Sequential([L.Dense(8), L.ReLU(), L.Dense(2)], seed=0)
        model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.1))
        return model

    inside, release, seen = threading.Event(), threading.Event(), {}

    class Pause(hp.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                inside.set()
                release.wait(30)

    def other_thread():
        inside.wait(30)
        try:
            model.predict(x)
        except RuntimeError as e:
            seen["error"] = str(e)
        seen["copy"] = copy.deepcopy(model).predict(x)  # a copy may predict meanwhile
        release.set()

    model = mlp()
    worker = threading.Thread(target=other_thread)
    worker.start()
    model.fit(x, y, epochs=2, batch_size=4, callbacks=[Pause()], verbose=0)
    worker.join(30)
    assert "predict: " in seen["error"] and "is running fit in another thread" in seen["error"]
    assert seen["copy"].shape == (16, 2)
    reference = mlp()
    reference.fit(x, y, epochs=2, batch_size=4, verbose=0)  # the weights did not drift
    assert all(np.array_equal(reference.get_weights()[k], v) for k, v in model.get_weights().items())
    assert model.predict(x).shape == (16, 2)  # free again once fit returned


# ----------------------------------------------------------------------------- case 22
def test_case22_large_image_inference_tiles_itself_within_budget():
    import tracemalloc

    small = hp.segmentation.vessel_unet(in_channels=1, width=4)
    x = np.random.default_rng(0).standard_normal((2, 1, 203, 181)).astype(np.float32)
    whole = hp.segmentation.predict_probabilities(small, x, max_pixels=None)
    tiled = hp.segmentation.predict_probabilities(small, x, max_pixels=170 * 170, tta="flips")
    np.testing.assert_allclose(tiled, hp.segmentation.predict_probabilities(small, x, max_pixels=None, tta="flips"),
                               atol=1e-5)  # the overlap-tile strategy: the whole image's numbers
    assert np.abs(whole - hp.segmentation.predict_probabilities(small, x, max_pixels=170 * 170)).max() < 1e-5
    with pytest.raises(ValueError, match="max_pixels=900 leaves no room"):
        hp.segmentation.predict_probabilities(small, x, max_pixels=900)
    demo_unet = hp.segmentation.vessel_unet(in_channels=1)
    image = np.random.default_rng(1).standard_normal((1, 1, 1024, 1024)).astype(np.float32)
    tracemalloc.start()
    try:
        hp.segmentation.predict_probabilities(demo_unet, image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.8e9, f"{peak / 1e9:.2f} GB"  # whole: 1.4 GB; 2048 x 2048 tiled: 0.64 GB traced
