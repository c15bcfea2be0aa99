"""Every qualitative claim the chapters make, checked against the numbers their full-mode run saved.

The committed notebooks state their results from the run (``hp.lesson.Results.say``, ``claim``,
``effect``), so the prose cannot contradict its own output. These tests pin the *story*: each one
asserts the verdict a chapter tells (helps / hurts / no clear effect, larger / smaller) and the size
behind it, on ``notebooks/results/<chapter>.json``, written by ``python notebooks/build.py``
(full mode). A rebuild that changes the sign or the size of an effect fails here, and the text
around the sentence (which was written for that verdict) must then be revisited.

Effects (``Results.effect``) are judged against the margin the chapter states (2 points of
accuracy for most comparisons: one seed of these small networks on a few hundred patches moves by
about a point), so a difference within the noise is asserted as "no clear effect", never as a
gain or a loss. Run only these with ``pytest tests/test_claims.py``.
"""

import math
import re
from pathlib import Path

import pytest

import handprop as hp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "notebooks" / "results"
CHAPTERS = ["01_neural_networks", "02_optimization", "03_convolutional_networks", "04_generalization",
            "06_vessel_segmentation", "07_beyond"]


def results(chapter):
    path = RESULTS / f"{chapter}.json"
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `python notebooks/build.py` (full mode) and commit it")
    return hp.lesson.load_results(chapter, RESULTS)


def claim(chapter, name):
    """``(verdict, values)`` of one claim of a chapter's committed run."""
    saved = results(chapter)
    assert name in saved["claims"], f"{chapter} no longer states the claim {name!r}: update tests/test_claims.py"
    return saved["claims"][name], saved["claim_values"][name]


def assert_effect(chapter, name, verdict):
    """The chapter says ``verdict`` about ``name``, and its numbers are on that side of the margin."""
    said, values = claim(chapter, name)
    change, margin = values["change"], values["margin"]
    assert said == verdict, f"{chapter}: {name} now says {said!r} (change {change:+.4f}, margin {margin})"
    if verdict == "helps":
        assert change > margin
    elif verdict == "hurts":
        assert change < -margin
    else:
        assert abs(change) <= margin
    return values


# ------------------------------------------------------------------------------------- chapter 1
def test_ch1_squared_error_ends_ahead_of_cross_entropy_on_this_easy_problem():
    values = assert_effect("01_neural_networks", "cross_entropy_vs_squared_error", "hurts")
    assert values["mse"] > 0.8 and values["ce"] > 0.75, "both losses should learn the task"


# ------------------------------------------------------------------------------------- chapter 2
def test_ch2_small_batches_get_further_per_epoch():
    holds, values = claim("02_optimization", "small_batches_get_further_per_epoch")
    assert holds and values["small"] < 0.25 * values["full"]


def test_ch2_too_large_learning_rate_stays_at_chance():
    holds, values = claim("02_optimization", "too_large_learning_rate_fails")
    assert holds and (math.isnan(values["big"]) or values["big"] > 0.8 * math.log(10))
    assert values["good"] < 0.3 < values["small"], "lr = 0.3 learns, lr = 0.01 is still slow"


def test_ch2_optimizers_end_a_few_points_apart():
    holds, values = claim("02_optimization", "optimizers_differ_little")
    assert not holds, "the text says the choice matters here"
    assert 3.0 <= values["points"] < 15.0


def test_ch2_adam_at_its_default_rate_starts_slower():
    holds, values = claim("02_optimization", "adam_default_starts_slower")
    assert holds and values["adam"] > values["others"] + 0.2


# ------------------------------------------------------------------------------------- chapter 3
def test_ch3_dilation_grows_the_receptive_field_at_no_cost_in_weights():
    holds, values = claim("03_convolutional_networks", "dilation_grows_the_field_at_no_cost")
    assert holds and values["dilated"] >= 5 * values["plain"]


# ------------------------------------------------------------------------------------- chapter 4
def test_ch4_leak_does_not_show_at_this_size():
    assert_effect("04_generalization", "leaky_split_flatters", "no clear effect")


def test_ch4_early_stopping_makes_no_clear_difference():
    assert_effect("04_generalization", "early_stopping", "no clear effect")


def test_ch4_small_ensemble_gains_nothing_clear():
    assert_effect("04_generalization", "ensemble", "no clear effect")


def test_ch4_dropout_makes_no_clear_difference():
    assert_effect("04_generalization", "dropout", "no clear effect")


def test_ch4_l1_makes_no_clear_difference():
    assert_effect("04_generalization", "l1", "no clear effect")


def test_ch4_weight_decay_makes_no_clear_difference():
    assert_effect("04_generalization", "l2", "no clear effect")


def test_ch4_bad_initialization_fails_without_batch_norm():
    holds, values = claim("04_generalization", "bad_init_fails_without_batchnorm")
    assert holds and values["glorot"] - values["worst_acc"] > 0.1 and values["worst_acc"] < 0.6


def test_ch4_batch_norm_rescues_both_bad_starts():
    holds, values = claim("04_generalization", "batchnorm_rescues_bad_inits")
    assert holds
    assert values["a_bn"] - values["a_plain"] > 0.1 and values["b_bn"] - values["b_plain"] > 0.1


def test_ch4_with_batch_norm_the_initializations_end_close():
    holds, values = claim("04_generalization", "batchnorm_makes_init_harmless")
    assert holds and values["spread"] < 5.0


def test_ch4_augmentation_makes_no_clear_difference_with_two_patients():
    assert_effect("04_generalization", "augmentation", "no clear effect")


def test_ch4_autoencoder_pretraining_hurts():
    values = assert_effect("04_generalization", "pretraining", "hurts")
    assert values["scratch"] > values["frozen"]


# ------------------------------------------------------------------------------------- chapter 6
def test_ch6_bigger_patches_need_many_more_weights():
    holds, values = claim("06_vessel_segmentation", "bigger_patch_needs_more_weights")
    assert holds and values["w11"] > 5 * values["w5"]


def test_ch6_fully_convolutional_network_gives_the_sliding_window_answer():
    holds, values = claim("06_vessel_segmentation", "fully_convolutional_is_exact")
    assert holds and values["diff"] < 1e-4


def test_ch6_surround_inflates_accuracy_and_specificity():
    holds, values = claim("06_vessel_segmentation", "surround_inflates_accuracy")
    assert holds
    assert values["acc_all"] > values["acc_fov"] and values["spec_all"] > values["spec_fov"]


def test_ch6_unet_and_patch_classifiers_end_close_at_this_budget():
    values = assert_effect("06_vessel_segmentation", "unet_vs_5x5", "no clear effect")
    assert abs(values["a11"] - values["a5"]) <= values["margin"], "the text says all three end close"


def test_ch6_patch_classifiers_need_higher_thresholds_than_the_unet():
    holds, values = claim("06_vessel_segmentation", "patch_thresholds_above_unet")
    assert holds and min(values["t5"], values["t11"]) > values["tu"] + 0.1


def test_ch6_unet_was_still_improving_when_training_stopped():
    holds, values = claim("06_vessel_segmentation", "unet_best_epoch_is_the_last")
    assert holds and values["best"] == values["n"]


def test_ch6_every_model_beats_the_green_channel():
    holds, values = claim("06_vessel_segmentation", "every_model_beats_the_green_channel")
    assert holds and values["worst"] > values["green"] + 0.1


def test_ch6_green_channel_auc_is_stated_the_way_the_figure_computes_it():
    saved = results("06_vessel_segmentation")["values"]
    _, values = claim("06_vessel_segmentation", "every_model_beats_the_green_channel")
    assert saved["green_auc_pooled"] == values["green"], "the sentence and the ROC legend give one AUC"


# ------------------------------------------------------------------------------------- chapter 7
def test_ch7_context_branch_verdict():
    assert_effect("07_beyond", "context_branch", "no clear effect")


def test_ch7_cnn3d_is_not_better_than_triplanar():
    assert_effect("07_beyond", "cnn3d_vs_triplanar", "no clear effect")


def test_ch7_sharing_plane_weights_does_no_harm():
    assert_effect("07_beyond", "shared_plane_weights", "no clear effect")


def test_ch7_digit_autoencoder_pretraining_makes_no_clear_difference():
    assert_effect("07_beyond", "digit_pretraining", "no clear effect")


def test_ch7_fine_tuning_adds_nothing_clear():
    assert_effect("07_beyond", "fine_tuning", "no clear effect")


def test_ch7_a_3x3x3_mean_makes_the_tubes_stand_out():
    holds, values = claim("07_beyond", "mean_filter_separates_tubes")
    assert holds and 1 - values["smooth"] < 0.7 * (1 - values["raw"]), "the mean should cut the AUC's shortfall"


def test_ch7_gan_players_end_balanced():
    holds, values = claim("07_beyond", "gan_players_balanced")
    assert holds and abs(values["d"] - math.log(2)) < 0.15


# ------------------------------------------------------------------------------------- all of them
def test_every_claim_a_chapter_states_has_a_test_here():
    """A new claim in a notebook needs its check in this file (named by its key)."""
    source = Path(__file__).read_text()
    tested = set(re.findall(r'(?:claim|assert_effect)\("\d\d_\w+", "(\w+)"', source))
    stated = {name for chapter in CHAPTERS for name in results(chapter)["claims"]}
    assert stated <= tested, f"claims without a test in tests/test_claims.py: {sorted(stated - tested)}"
