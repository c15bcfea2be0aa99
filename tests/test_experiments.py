"""Smoke tests of handprop.experiments: every experiment runs at a trivial size and writes its table,
figure and numbers; plus the pieces the experiments are built from."""

import json

import numpy as np
import pytest

import handprop as hp
from handprop import experiments
from handprop.experiments import common


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = hp.get_num_threads()
    yield
    hp.set_num_threads(before.get("numba") or 1)


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_experiment_smoke(name, tmp_path):
    result = experiments.run(name, out=tmp_path, smoke=True, verbose=0)
    paths = result["paths"]
    assert set(paths) == {"table", "figure", "json"}
    table = paths["table"].read_text()
    assert table.startswith("# ") and "| --- |" not in table and "|---|" in table
    assert "![" in table and f"({name}.png)" in table  # the table links its figure
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads(paths["json"].read_text())
    assert numbers.get("results") or numbers.get("ensembles")
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # without the header
    assert len(rows) == len(result["results"])


def test_unknown_experiment():
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        experiments.run("nope")


def test_command_line_smoke(tmp_path, capsys):
    from handprop.experiments.__main__ import main

    assert main(["reducing_parameters", "--smoke", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "reducing_parameters.md").exists()
    assert "reducing_parameters.png" in capsys.readouterr().out


def test_split_is_by_patient():
    split = common.retina_split(common.SMOKE, seed=0)
    parts = [set(split.patients[k]) for k in ("training", "validation", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    for name, part in zip(("training", "validation", "test"), (split.train, split.val, split.test)):
        patients = {i.rsplit("_crop", 1)[0] for i in part.data.ids}
        assert patients == set(split.patients[name])  # every crop comes from a patient of its own part
        assert part.x.shape == part.data.images.shape and part.x.dtype == np.float32


def test_crops_keep_masks_aligned():
    sizes = common.Sizes(train=1, val=1, test=1, retina=(96, 96), crop=40, crops_per_patient=2)
    split = common.retina_split(sizes, seed=3)
    full = hp.data.synthetic_retina(3, seed=3, size=(96, 96))
    x = hp.segmentation.normalize_images(full)
    index = full.ids.index(split.patients["test"][0])
    crop = split.test
    # find the crop in the full normalized image: the vessel mask must be cut at the same place
    h = crop.x.shape[-1]
    hits = [(t, left) for t in range(96 - h + 1) for left in range(96 - h + 1)
            if np.array_equal(x[index][:, t:t + h, left:left + h], crop.x[0])]
    assert hits
    t, left = hits[0]
    np.testing.assert_array_equal(full.vessels[index][t:t + h, left:left + h], crop.vessels[0])
    np.testing.assert_array_equal(full.fov[index][t:t + h, left:left + h], crop.fov[0])


def test_wide_vessels_and_sensitivity_by_width():
    vessels = np.zeros((1, 20, 20), np.uint8)
    vessels[0, 2:9, :] = 1      # a 7-px-wide vessel
    vessels[0, 14, :] = 1       # a 1-px-wide one
    wide = common.wide_vessels(vessels, 5)
    assert wide[0, 2:9, 3:17].all() and not wide[0, 14].any() and not wide[0, 10:13].any()
    part = common.Part(hp.data.RetinaData(np.zeros((1, 3, 20, 20), np.float32), vessels, np.ones((1, 20, 20), bool),
                                          ["a"]), np.zeros((1, 3, 20, 20), np.float32))
    prob = np.zeros((1, 20, 20))
    prob[0, 14] = 1.0           # finds the thin vessel only
    found_wide, found_thin = common.sensitivity_by_width(prob, part, 0.5)
    assert found_wide == 0.0 and found_thin > 0.5


def test_scores_use_validation_threshold():
    split = common.retina_split(common.SMOKE, seed=0)
    truth = lambda part: part.vessels.astype(np.float32)
    s = common.scores(truth(split.val) * 0.3, truth(split.test) * 0.3, split, prob_train=truth(split.train) * 0.3)
    assert s["auc"] == pytest.approx(1.0) and s["dice"] == pytest.approx(1.0)
    assert s["train_auc"] == pytest.approx(1.0) and s["threshold"] < 0.3


def test_augmented_patches_are_symmetries():
    from handprop.experiments.regularization import AugmentedPatches

    x = np.random.default_rng(0).standard_normal((6, 3, 5, 5)).astype(np.float32)
    y = np.arange(6)
    source = AugmentedPatches(x, y, batch_size=4, seed=1)
    batches = list(source.epoch(0))
    assert len(batches) == len(source) == 2
    xb = np.concatenate([b[0] for b in batches])
    yb = np.concatenate([b[1] for b in batches])
    for patch, label in zip(xb, yb):
        original = x[label]
        # undo the affine intensity change by matching the mean and spread, then find the symmetry
        candidates = [np.rot90(original, k, axes=(1, 2)) for k in range(4)]
        candidates += [c[..., ::-1] for c in candidates]
        z = (patch - patch.mean()) / patch.std()
        assert any(np.allclose(z, (c - c.mean()) / c.std(), atol=1e-4) for c in candidates)
    assert [b[1].tolist() for b in source.epoch(0)] == [b[1].tolist() for b in batches]  # reproducible


def test_clock_reports_load():
    with common.Clock() as clock:
        pass
    assert clock.seconds >= 0 and "-" in clock.load


def test_markdown_table():
    text = common.markdown_table(["a", "b"], [[1, "x"], [2, "y"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]
    assert common.pm([1.0, 3.0], 1) == "2.0 ± 1.4" and common.pm([0.5]) == "0.500"
