"""hp.lesson: result sentences rendered from the run's numbers, claims, and the results file."""

import json

import matplotlib
import numpy as np
import pytest

import handprop as hp


def test_say_renders_from_values_and_records_them(capsys):
    results = hp.lesson.Results("99_test")
    assert results.say("AUC {auc:.3f} with {n} nets", auc=np.float32(0.91234), n=np.int64(5)) is None
    assert capsys.readouterr().out.strip() == "AUC 0.912 with 5 nets"  # shown once, not echoed as a cell value
    assert results.values == {"auc": pytest.approx(0.91234, abs=1e-6), "n": 5}
    assert type(results.values["n"]) is int


def test_claim_picks_the_sentence_the_numbers_support(capsys):
    results = hp.lesson.Results("99_test")
    assert results.claim("helps", 0.90 > 0.91, "It helps ({a})", "It does not help ({a})", a=1) is None
    assert capsys.readouterr().out.strip() == "It does not help (1)"
    assert results.claims == {"helps": False}
    results.claim("other", True, "a = {a}", "no", a=np.float32(2.0))  # the same keyword in another claim
    assert results.claim_values == {"helps": {"a": 1}, "other": {"a": 2.0}}
    assert results.values["a"] == 2.0  # the flat record keeps the last


def test_nan_is_refused():
    with pytest.raises(ValueError, match="x is NaN"):
        hp.lesson.Results("99_test").record(x=float("nan"))


def test_save_writes_only_where_the_environment_names_a_folder(tmp_path, monkeypatch):
    results = hp.lesson.Results("99_test")
    results.record(a=np.arange(3), b={"c": np.float64(2.5)})
    monkeypatch.delenv(hp.lesson.RESULTS_ENV, raising=False)
    assert results.save() is None
    monkeypatch.setenv(hp.lesson.RESULTS_ENV, str(tmp_path))
    assert results.save() is None
    saved = json.loads(results.saved_to.read_text())
    assert saved == {"chapter": "99_test", "values": {"a": [0, 1, 2], "b": {"c": 2.5}}, "claims": {},
                     "claim_values": {}}
    assert hp.lesson.load_results("99_test", tmp_path) == saved
    with pytest.raises(FileNotFoundError, match="make notebooks"):
        hp.lesson.load_results("98_missing", tmp_path)


def test_lecture_style_sets_projectable_fonts():
    with matplotlib.rc_context():
        hp.lesson.lecture_style()
        assert matplotlib.rcParams["font.size"] >= 12 and matplotlib.rcParams["legend.fontsize"] >= 12
        assert matplotlib.rcParams["figure.dpi"] >= 100
    assert hp.lesson.model_color("U-Net") == "tab:red"
    with pytest.raises(KeyError, match="known"):
        hp.lesson.model_color("VGG")


def test_effect_says_helps_hurts_or_no_clear_effect(capsys):
    results = hp.lesson.Results("99_test")
    texts = ("helps by {change:.2f}", "hurts by {change:.2f}", "no clear effect ({change:+.2f}, margin {margin})")
    results.effect("a", 0.05, 0.02, *texts)
    results.effect("b", -0.03, 0.02, *texts)
    results.effect("c", 0.01, 0.02, *texts, extra=1)
    assert capsys.readouterr().out.split("\n")[:3] == ["helps by 0.05", "hurts by -0.03",
                                                         "no clear effect (+0.01, margin 0.02)"]
    assert results.claims == {"a": "helps", "b": "hurts", "c": "no clear effect"}
    assert results.claim_values["c"] == {"extra": 1, "change": 0.01, "margin": 0.02}
