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

import ast
import math
import re
from pathlib import Path

import pytest

import handprop as hp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "notebooks" / "results"
CHAPTERS = ["01_neural_networks", "02_optimization", "03_convolutional_networks", "04_generalization",
            "05_getting_started", "06_vessel_segmentation", "07_beyond"]


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
    tested = set(re.findall(r'"(\w+)"', source))  # every claim's key appears in a test of this file
    stated = {name for chapter in CHAPTERS for name in results(chapter)["claims"]}
    assert stated <= tested, f"claims without a test in tests/test_claims.py: {sorted(stated - tested)}"


# ------------------------------------------------------------- the topic sections (issue 18, item 5)
def topic_results(chapter, *names):
    """The saved values and claims of ``chapter``; fails if one of ``names`` was not saved."""
    try:
        saved = hp.lesson.load_results(chapter, RESULTS)
    except FileNotFoundError as error:  # the chapter's full-mode run was never committed
        pytest.fail(str(error))
    known = set(saved["values"]) | set(saved["claims"])
    missing = [name for name in names if name not in known]
    assert not missing, (f"notebooks/results/{chapter}.json has no {missing}: rebuild it in full mode "
                         f"(python notebooks/build.py {chapter[:2]})")
    return saved["values"], saved["claims"]


# ------------------------------------------------------------------ chapter 2: learning-rate decay
def test_lr_decay_steadies_validation_loss():
    v, c = topic_results("02_optimization", "lr_decay_steadies_validation_loss", "decay_jitter_step",
                   "decay_jitter_exponential", "decay_jitter_constant")
    assert c["lr_decay_steadies_validation_loss"]
    assert max(v["decay_jitter_step"], v["decay_jitter_exponential"]) < v["decay_jitter_constant"] / 2


def test_lr_decay_lowers_validation_loss():
    v, c = topic_results("02_optimization", "lr_decay_lowers_validation_loss", "decay_val_loss_step",
                   "decay_val_loss_exponential", "decay_val_loss_constant")
    assert c["lr_decay_lowers_validation_loss"]
    assert max(v["decay_val_loss_step"], v["decay_val_loss_exponential"]) < v["decay_val_loss_constant"]


# ------------------------------------------------ chapter 3: deep stacks of 3x3, pooling's savings
def test_two_3x3_layers_need_fewer_weights_than_one_5x5():
    v, _ = topic_results("03_convolutional_networks", "stack_weights_two_3x3", "stack_weights_one_5x5")
    assert v["stack_weights_two_3x3"] < 0.75 * v["stack_weights_one_5x5"]  # 18 C^2 + 2C vs 25 C^2 + C


def test_two_3x3_layers_learn_as_well_as_one_5x5():
    values = assert_effect("03_convolutional_networks", "two_3x3_vs_one_5x5", "no clear effect")
    assert values["stack_params_two_3x3"] < values["stack_params_one_5x5"]


def test_pooling_cuts_the_slides_8200_weights_to_1800():
    v, _ = topic_results("03_convolutional_networks", "pool_weights_without", "pool_weights_with", "pool_field_without",
                   "pool_field_with")
    assert (v["pool_weights_without"], v["pool_weights_with"]) == (8200, 1800)
    assert abs(v["pool_field_without"] - v["pool_field_with"]) <= 1  # nearly the same view


def test_max_pooling_ignores_small_shifts_what_not_where():
    v, _ = topic_results("03_convolutional_networks", "shift_unchanged_pooled", "shift_unchanged_plain")
    assert v["shift_unchanged_pooled"] >= 5 and v["shift_unchanged_plain"] == 0


# --------------------------------------- chapter 4: transfer, fewer parameters, practical habits
def test_one_batch_is_overfit_and_the_bug_shows():
    v, c = topic_results("04_generalization", "one_batch_overfits", "batch_loss_last", "batch_loss_bug",
                         "batch_loss_first")
    assert c["one_batch_overfits"]
    assert v["batch_loss_last"] < 0.01 and v["batch_loss_bug"] > 0.5 * v["batch_loss_first"]


def test_choosing_on_the_test_set_flatters():
    v, c = topic_results("04_generalization", "tuning_on_test_flatters", "tries_tuned_on_test", "tries_mean")
    assert c["tuning_on_test_flatters"]
    assert v["tries_tuned_on_test"] - v["tries_mean"] > 0.005


def test_transfer_from_another_hospital_beats_training_from_scratch():
    v, c = topic_results("04_generalization", "transfer_beats_scratch", "transfer_finetuned", "transfer_source_only",
                   "transfer_scratch")
    assert c["transfer_beats_scratch"]
    assert min(v["transfer_finetuned"], v["transfer_source_only"]) > v["transfer_scratch"] + 0.01


def test_finetuning_on_100_patches_no_better_than_the_source_network():
    v, c = topic_results("04_generalization", "finetuning_no_better_than_source", "transfer_finetuned",
                   "transfer_source_only")
    assert c["finetuning_no_better_than_source"]
    assert v["transfer_finetuned"] <= v["transfer_source_only"] + 0.01


def test_separable_convolution_keeps_most_accuracy_with_few_weights():
    v, c = topic_results("04_generalization", "separable_keeps_most_accuracy", "separable_weights", "plain_weights",
                   "separable_acc", "plain_acc")
    assert v["separable_weights"] < v["plain_weights"] / 4
    assert c["separable_keeps_most_accuracy"]
    assert v["separable_acc"] >= v["plain_acc"] - 0.03


# ------------------------------------ chapter 6: hand-made vs learned features, post-processing
def test_learned_models_beat_the_handmade_vesselness():
    v, c = topic_results("06_vessel_segmentation", "learned_beats_handmade", "feature_auc_green", "feature_auc_hessian",
                   "feature_auc_learned")
    assert c["learned_beats_handmade"]
    assert v["feature_auc_green"] < v["feature_auc_hessian"] < v["feature_auc_learned"]


def test_connectivity_postprocessing_does_not_pay_at_a_dice_tuned_threshold():
    v, c = topic_results("06_vessel_segmentation", "component_cleanup_helps_some_model", "hysteresis_helps_some_model",
                   "post_cleanup_gain", "post_grow_gain")
    assert not c["component_cleanup_helps_some_model"] and not c["hysteresis_helps_some_model"]
    assert max(v["post_cleanup_gain"].values()) <= 0.01 and max(v["post_grow_gain"].values()) <= 0.01


def test_fov_mask_removes_false_alarms_outside_the_fov():
    v, c = topic_results("06_vessel_segmentation", "fov_mask_removes_outside_false_alarms", "post_whole_dice_before",
                   "post_whole_dice_after", "post_outside_pixels")
    assert c["fov_mask_removes_outside_false_alarms"]
    assert v["post_whole_dice_after"] > v["post_whole_dice_before"] + 0.05 and v["post_outside_pixels"] > 100


# ----------------------------------------------------------- chapter 7: 2.5-D vs 3-D, tubes and brain
def test_networks_beat_intensity_on_the_mni_brain():
    v, c = topic_results("07_beyond", "mni_networks_beat_intensity", "mni_auc_intensity", "mni_auc_mean3",
                   "mni_auc_triplanar", "mni_auc_3d")
    assert c["mni_networks_beat_intensity"]
    assert min(v["mni_auc_triplanar"], v["mni_auc_3d"]) > max(v["mni_auc_intensity"], v["mni_auc_mean3"]) + 0.02


def test_3d_cnn_no_clear_gain_over_triplanar_on_the_mni_brain():
    v, c = topic_results("07_beyond", "mni_3d_no_clear_gain", "mni_auc_3d", "mni_auc_triplanar", "mni_time_ratio")
    assert c["mni_3d_no_clear_gain"]
    assert abs(v["mni_auc_3d"] - v["mni_auc_triplanar"]) < 0.02
    assert v["mni_time_ratio"] > 1


# ------------------------------------------------------------------------------------- chapter 5
SOURCE5 = ROOT / "notebooks" / "source" / "05_getting_started.py"


@pytest.fixture(scope="module")
def ch5():
    return hp.lesson.load_results("05_getting_started", RESULTS)


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
    tree = ast.parse(SOURCE5.read_text())
    fits = _calls(tree, "fit")
    assert len(fits) >= 4
    for call in fits:
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            assert "test" not in ast.unparse(arg).lower(), ast.unparse(call)
    validated = [c for c in fits if any(k.arg == "validation_data" for k in c.keywords)]
    assert validated and all("val" in ast.unparse(k.value) for c in validated for k in c.keywords
                             if k.arg == "validation_data")
