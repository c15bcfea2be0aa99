"""The main job, `handprop demo`: retinal vessel segmentation end to end, on synthetic patients and
on a DRIVE-layout folder, at a tiny size (the full-size run and its metrics: README, "The main job")."""

from __future__ import annotations

import json

import numpy as np
import pytest

import handprop as hp
from handprop.segmentation import (
    best_dice_threshold,
    green_channel_auc,
    normalize_images,
    predict_probabilities,
    run_vessel_segmentation,
    vessel_unet,
)

KEYS = ("auc", "dice", "accuracy", "sensitivity", "specificity")


def test_normalize_images_uses_each_image_alone_inside_its_fov():
    data = hp.data.synthetic_retina(2, size=(48, 40))
    x = normalize_images(data)
    for i in range(2):
        inside = x[i][:, data.fov[i]]
        np.testing.assert_allclose(inside.mean(axis=1), 0, atol=1e-4)
        np.testing.assert_allclose(inside.std(axis=1), 1, atol=1e-4)
        assert (normalize_images(data, outside="zero")[i][:, ~data.fov[i]] == 0).all()
        edge = x[i][:, ~data.fov[i]]  # outside: copies of FOV pixels, so no circular edge
        assert edge.min() >= inside.min() and edge.max() <= inside.max()
    scaled = hp.data.RetinaData(data.images * 0.5 + 0.1, data.vessels, data.fov, data.ids)
    np.testing.assert_allclose(normalize_images(scaled), x, atol=1e-4)  # brightness and contrast removed


def test_probabilities_keep_the_image_size_and_threshold_choice():
    model = vessel_unet(width=4)
    x = np.random.default_rng(0).standard_normal((2, 3, 37, 29)).astype(np.float32)
    p = predict_probabilities(model, x)
    assert p.shape == (2, 37, 29) and ((p > 0) & (p < 1)).all()
    truth = (np.random.default_rng(1).random((2, 37, 29)) > 0.8).astype(np.uint8)
    fov = np.ones((2, 37, 29), bool)
    t, d = best_dice_threshold(truth * 0.6 + 0.2, truth, fov)
    assert 0.2 <= t < 0.8 and d == 1.0


def test_demo_on_synthetic_patients_writes_what_it_promises(tmp_path, capsys):
    metrics = run_vessel_segmentation(tmp_path, n_synthetic=6, epochs=2, steps=3, size=(72, 64), tile=32,
                                      verbose=1)
    printed = capsys.readouterr().out
    assert "inside the FOV" in printed and "green-channel" in printed
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in KEYS:
        assert 0.0 <= saved[key] <= 1.0 and saved[key] == pytest.approx(metrics[key])
    assert len(saved["per_image"]) == len(saved["patients"]["test"]) >= 1
    assert set(saved["per_image"][0]) >= {"id", *KEYS}
    probs = np.load(tmp_path / "probabilities.npz")
    assert sorted(probs.files) == sorted(saved["patients"]["test"])
    assert all(probs[k].shape == (72, 64) for k in probs.files)
    train, val, test = (set(saved["patients"][k]) for k in ("training", "validation", "test"))
    assert not (train & val or train & test or val & test)  # split by patient
    for name in ("training_curves.png", "roc_curves.png", "fundus_photo_prediction.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_demo_on_a_drive_folder_with_and_without_test_annotations(tmp_path):
    data = hp.data.synthetic_retina(8, seed=3, size=(64, 60))
    root = tmp_path / "DRIVE"
    hp.data.save_drive_layout(data[:5], root, "training")
    hp.data.save_drive_layout(data[5:], root, "test")
    metrics = run_vessel_segmentation(tmp_path / "out", drive=root, epochs=1, steps=2, tile=32, verbose=0,
                                      figures=False)
    assert metrics["patients"]["test"] == ["01_test", "02_test", "03_test"]
    assert all(0.0 <= metrics[k] <= 1.0 for k in KEYS)
    import shutil

    shutil.rmtree(root / "test" / "1st_manual")
    metrics = run_vessel_segmentation(tmp_path / "out2", drive=root, epochs=1, steps=2, tile=32, verbose=0,
                                      figures=False)
    assert all(metrics[k] is None for k in KEYS) and "no vessel annotations" in metrics["note"]
    assert len(np.load(tmp_path / "out2" / "probabilities.npz").files) == 3


def test_drive_folders_too_small_for_the_defaults(tmp_path):
    """Images smaller than the default 64-px tiles train on tiles that fit; one training image
    (nothing left to validate on) is an error that says so."""
    data = hp.data.synthetic_retina(4, seed=4, size=(44, 50))
    root = tmp_path / "DRIVE"
    hp.data.save_drive_layout(data[:2], root, "training")
    hp.data.save_drive_layout(data[2:], root, "test")
    metrics = run_vessel_segmentation(tmp_path / "out", drive=root, epochs=1, steps=1, verbose=0, figures=False)
    assert np.isfinite(metrics["auc"])
    for path in (root / "training" / "images").glob("22_*"):
        path.unlink()
    with pytest.raises(ValueError, match="has 1 image; at least 2 are needed"):
        run_vessel_segmentation(tmp_path / "out2", drive=root, epochs=1, steps=1, verbose=0, figures=False)


def test_green_channel_baseline_is_a_real_baseline():
    data = hp.data.synthetic_retina(2, size=(96, 96))
    mean, per_image = green_channel_auc(data)
    assert 0.6 < mean < 0.97 and len(per_image) == 2
