"""`handprop predict`: a model saved by `handprop demo` applied to new images reproduces the demo's
test probabilities bit for bit; image files get an estimated FOV; metrics.json states its protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

import handprop as hp
from handprop.cli import main
from handprop.segmentation import (
    SETTINGS_KEY,
    TEST_TIME_FLIPS,
    predict_probabilities,
    run_prediction,
    run_vessel_segmentation,
    segment,
    vessel_unet,
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A tiny `handprop demo --drive` on a synthetic DRIVE-layout folder (5 training, 3 test patients)."""
    tmp = tmp_path_factory.mktemp("demo")
    data = hp.data.synthetic_retina(8, seed=3, size=(64, 60))
    root = tmp / "DRIVE"
    hp.data.save_drive_layout(data[:5], root, "training")
    hp.data.save_drive_layout(data[5:], root, "test")
    metrics = run_vessel_segmentation(tmp / "out", drive=root, epochs=2, steps=2, tile=32, verbose=0, figures=False)
    return tmp, root, metrics


def test_predict_reproduces_the_demos_test_probabilities_exactly(demo_run, tmp_path):
    tmp, root, metrics = demo_run
    demo = np.load(tmp / "out" / "probabilities.npz")
    assert sorted(demo.files) == ["01_test", "02_test", "03_test"]
    assert main(["predict", str(tmp / "out" / "model.safetensors"), "--drive", str(root), "--out",
                 str(tmp_path)]) == 0
    again = np.load(tmp_path / "probabilities.npz")
    assert sorted(again.files) == sorted(demo.files)
    for key in demo.files:
        assert demo[key].shape == (64, 60) and demo[key].dtype == np.float32
        assert np.array_equal(demo[key], again[key])  # bit for bit
    summary = json.loads((tmp_path / "predictions.json").read_text())
    assert summary["threshold"] == metrics["threshold"]
    assert summary["auc"] == pytest.approx(metrics["auc"]) and summary["dice"] == pytest.approx(metrics["dice"])
    assert (tmp_path / "prediction_01_test.png").stat().st_size > 5000


def test_the_saved_model_carries_its_recipe(demo_run):
    tmp, _, metrics = demo_run
    model = hp.load_model(tmp / "out" / "model.safetensors")
    settings = model.metadata[SETTINGS_KEY]
    assert settings["threshold"] == metrics["threshold"] and settings["threshold_rule"] == "p >= threshold"
    assert settings["tta"] in TEST_TIME_FLIPS and settings["preprocessing"] == metrics["protocol"]["preprocessing"]
    assert model.layers_list()[0].params["W"].shape[1] == 1  # one input channel: green, CLAHE'd


def test_metrics_json_states_its_protocol(demo_run):
    tmp, _, _ = demo_run
    saved = json.loads((tmp / "out" / "metrics.json").read_text())
    for key in ("auc", "dice", "accuracy", "sensitivity", "specificity", "threshold"):
        assert 0.0 <= saved[key] <= 1.0
    assert saved["inside_fov"] is True and set(saved["pooled"]) >= {"auc", "dice"}
    protocol = saved["protocol"]
    assert set(protocol) >= {"inside_fov", "mean_per_image", "pooled", "threshold", "probabilities",
                             "preprocessing", "test_time_augmentation"}
    assert "p >= threshold" in protocol["threshold"] and "validation" in protocol["threshold"]
    per_image = np.mean([row["auc"] for row in saved["per_image"]])
    assert saved["auc"] == pytest.approx(per_image)  # the top-level AUC is the mean per image
    # the threshold is applied as p >= threshold: the reported Dice recomputes from the saved maps
    data = hp.data.load_drive(tmp / "DRIVE", "test")
    probs = np.load(tmp / "out" / "probabilities.npz")
    dices = []
    for i, key in enumerate(data.ids):
        pred, truth, fov = probs[key] >= saved["threshold"], data.vessels[i] > 0, data.fov[i]
        dices.append(2 * (pred & truth & fov).sum() / ((pred & fov).sum() + (truth & fov).sum()))
        assert (probs[key][~fov] == 0).all()  # nothing outside the FOV
    assert saved["dice"] == pytest.approx(np.mean(dices), abs=1e-9)


def test_predict_on_image_files_estimates_the_fov(demo_run, tmp_path):
    tmp, root, _ = demo_run
    files = sorted((root / "test" / "images").glob("*.tif"))
    summary = run_prediction(tmp / "out" / "model.safetensors", tmp_path, images=files, verbose=0, figures=False)
    probs = np.load(tmp_path / "probabilities.npz")
    assert summary["ids"] == [f.stem for f in files] == sorted(probs.files)
    truth = hp.data.load_drive(root, "test")
    for i, f in enumerate(files):
        fov = hp.data.estimate_fov(truth.images[i])
        assert probs[f.stem].shape == (64, 60) and (probs[f.stem][~fov] == 0).all()
        assert (fov & truth.fov[i]).sum() / (fov | truth.fov[i]).sum() > 0.9


def test_predict_needs_one_source(tmp_path, capsys):
    for argv in (["predict", "m.safetensors", "--out", str(tmp_path)],
                 ["predict", "m.safetensors", "x.png", "--drive", str(tmp_path), "--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(tmp_path / "missing.safetensors"), "--drive", str(tmp_path), "--out", str(tmp_path)])
    assert stop.value.code == 2 and "no such file" in capsys.readouterr().err


def test_test_time_flips_average_the_flipped_predictions():
    model = vessel_unet(in_channels=1, width=4)
    x = np.random.default_rng(0).standard_normal((2, 1, 20, 24)).astype(np.float32)
    by_hand = np.mean([np.flip(predict_probabilities(model, np.ascontiguousarray(np.flip(x, axes))), axes)
                       for axes in ((-1,), (-2,), (-2, -1))] + [predict_probabilities(model, x)], axis=0)
    np.testing.assert_allclose(predict_probabilities(model, x, tta="flips"), by_hand, rtol=1e-6)
    with pytest.raises(ValueError, match="tta must be one of"):
        predict_probabilities(model, x, tta="rotations")


def test_segment_without_a_saved_recipe_uses_the_old_demos():
    data = hp.data.synthetic_retina(1, size=(32, 36))
    model = vessel_unet(width=4)  # three input channels: RGB, standardized
    p = segment(model, data)
    assert p.shape == (1, 32, 36) and (p[0][~data.fov[0]] == 0).all()


def test_budgets_and_their_overrides(tmp_path):
    from handprop.segmentation import BUDGETS

    full, default = BUDGETS["full"], BUDGETS["default"]
    assert full["epochs"] * full["steps"] > 4 * default["epochs"] * default["steps"]
    with pytest.raises(ValueError, match="budget must be one of"):
        run_vessel_segmentation(tmp_path, budget="huge")
    with pytest.raises(SystemExit):
        main(["demo", "--budget", "huge", "--out", str(tmp_path)])


def test_a_file_that_is_not_an_image_is_named_by_predict(tmp_path, demo_run):
    tmp, _, _ = demo_run
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(hp.DataError, match=r"handprop predict: .*notes.png is not a readable image"):
        run_prediction(tmp / "out" / "model.safetensors", tmp_path / "out", images=[bad], verbose=0, figures=False)


def test_a_recipe_without_its_keys_is_a_clear_error():
    model = vessel_unet(width=4)
    model.metadata = {"vessel_segmentation": {"threshold": 0.5}}
    with pytest.raises(ValueError, match=r"missing \['preprocessing', 'tta'\]"):
        segment(model, hp.data.synthetic_retina(1, size=(32, 36)))
    model.metadata = {"vessel_segmentation": {"threshold": 0.5, "preprocessing": {}, "tta": "rotations"}}
    with pytest.raises(ValueError, match="tta 'rotations' must be one of"):
        segment(model, hp.data.synthetic_retina(1, size=(32, 36)))
