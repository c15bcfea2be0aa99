"""Chapter 5's claims, asserted on the numbers its committed full-mode run saved
(``notebooks/results/05_getting_started.json``, written by ``python notebooks/build.py 05``), and
its data discipline read from the source: test patients only in evaluate / predict / metrics."""

import ast
from pathlib import Path

import pytest

import handprop as hp

SOURCE = Path(__file__).resolve().parents[1] / "notebooks" / "source" / "05_getting_started.py"


@pytest.fixture(scope="module")
def ch5():
    return hp.lesson.load_results("05_getting_started")


def test_keras1_mlp_same_as_handprop(ch5):
    """The slide's first program through handprop.keras1 and the idiomatic handprop version are the
    same network: same probabilities on the test digits up to float32 rounding."""
    assert ch5["claims"]["keras1_mlp_same_as_handprop"] is True
    assert ch5["values"]["mlp_probability_gap"] < 1e-5
    assert ch5["values"]["slide_test_accuracy"] > 0.5  # chance is 0.1: the slide's program learned


def test_convnet_count_as_keras1(ch5):
    """The slide's ConvNet has Keras 1's parameter count (per-position PReLU slopes) in
    handprop.keras1; handprop's per-channel version has exactly those slopes fewer."""
    values = ch5["values"]
    assert ch5["claims"]["convnet_count_as_keras1"] is True
    assert values["convnet_params_keras1"] == values["convnet_params_by_hand"] == 2_802_205
    assert values["convnet_first_shape"] == [25, 25, 20]
    assert values["convnet_params_per_channel"] == values["patch_cnn_params"] == 2_784_775
    assert values["convnet_fewer_params"] == 25 * 25 * 20 + 10 * 10 * 50 - 20 - 50


def test_vessel_convnet_above_chance(ch5):
    """On the test patients, touched once, the 2-output ConvNet beats chance on balanced patches."""
    assert ch5["claims"]["vessel_convnet_above_chance"] is True
    assert ch5["values"]["vessel_test_accuracy"] > 0.5
    assert ch5["values"]["n_test_patients"] >= 2


def test_save_load_same_predictions(ch5):
    assert ch5["claims"]["save_load_same_predictions"] is True


def _calls(tree, method):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == method]


def test_chapter5_never_trains_or_monitors_on_test_data():
    """Every array of test patients (or test digits) is named *test*; none reaches fit."""
    tree = ast.parse(SOURCE.read_text())
    fits = _calls(tree, "fit")
    assert len(fits) >= 4
    for call in fits:
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            assert "test" not in ast.unparse(arg).lower(), ast.unparse(call)
    validated = [c for c in fits if any(k.arg == "validation_data" for k in c.keywords)]
    assert validated and all("val" in ast.unparse(k.value) for c in validated for k in c.keywords
                             if k.arg == "validation_data")
