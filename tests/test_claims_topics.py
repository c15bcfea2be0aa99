"""The claims of the topic sections (issue 18, item 5), checked on the committed full-mode results.

Each test reads ``notebooks/results/NN_name.json``, written by ``python notebooks/build.py NN``
(full mode), and asserts the effect the notebook's sentence states -- its sign and, where the
sentence says so, its size -- on the numbers that run saved. A rebuild whose numbers no longer
support a sentence fails here (the notebook itself would then show the other sentence).
"""

import pytest

from handprop.lesson import load_results


def results(chapter, *names):
    """The saved values and claims of ``chapter``; fails if one of ``names`` was not saved."""
    try:
        saved = load_results(chapter)
    except FileNotFoundError as error:  # the chapter's full-mode run was never committed
        pytest.skip(str(error))
    known = set(saved["values"]) | set(saved["claims"])
    missing = [name for name in names if name not in known]
    assert not missing, (f"notebooks/results/{chapter}.json has no {missing}: rebuild it in full mode "
                         f"(python notebooks/build.py {chapter[:2]})")
    return saved["values"], saved["claims"]


# ------------------------------------------------------------------ chapter 2: learning-rate decay
def test_lr_decay_steadies_validation_loss():
    v, c = results("02_optimization", "lr_decay_steadies_validation_loss", "decay_jitter_step",
                   "decay_jitter_exponential", "decay_jitter_constant")
    assert c["lr_decay_steadies_validation_loss"]
    assert max(v["decay_jitter_step"], v["decay_jitter_exponential"]) < v["decay_jitter_constant"] / 2


def test_lr_decay_lowers_validation_loss():
    v, c = results("02_optimization", "lr_decay_lowers_validation_loss", "decay_val_loss_step",
                   "decay_val_loss_exponential", "decay_val_loss_constant")
    assert c["lr_decay_lowers_validation_loss"]
    assert max(v["decay_val_loss_step"], v["decay_val_loss_exponential"]) < v["decay_val_loss_constant"]


# ------------------------------------------------ chapter 3: deep stacks of 3x3, pooling's savings
def test_two_3x3_layers_need_fewer_weights_than_one_5x5():
    v, _ = results("03_convolutional_networks", "stack_weights_two_3x3", "stack_weights_one_5x5")
    assert v["stack_weights_two_3x3"] < 0.75 * v["stack_weights_one_5x5"]  # 18 C^2 + 2C vs 25 C^2 + C


def test_two_3x3_layers_learn_as_well_as_one_5x5():
    v, c = results("03_convolutional_networks", "two_3x3_as_good_as_5x5", "stack_acc_two_3x3", "stack_acc_one_5x5",
                   "stack_params_two_3x3", "stack_params_one_5x5")
    assert c["two_3x3_as_good_as_5x5"]
    assert v["stack_acc_two_3x3"] >= v["stack_acc_one_5x5"] - 0.01
    assert v["stack_params_two_3x3"] < v["stack_params_one_5x5"]


def test_pooling_cuts_the_slides_8200_weights_to_1800():
    v, _ = results("03_convolutional_networks", "pool_weights_without", "pool_weights_with", "pool_field_without",
                   "pool_field_with")
    assert (v["pool_weights_without"], v["pool_weights_with"]) == (8200, 1800)
    assert abs(v["pool_field_without"] - v["pool_field_with"]) <= 1  # nearly the same view


def test_max_pooling_ignores_small_shifts_what_not_where():
    v, _ = results("03_convolutional_networks", "shift_unchanged_pooled", "shift_unchanged_plain")
    assert v["shift_unchanged_pooled"] >= 5 and v["shift_unchanged_plain"] == 0


# --------------------------------------- chapter 4: transfer, fewer parameters, practical habits
def test_one_batch_is_overfit_and_the_bug_shows():
    v, c = results("04_generalization", "one_batch_overfits", "batch_loss_last", "batch_loss_bug", "batch_loss_first")
    assert c["one_batch_overfits"]
    assert v["batch_loss_last"] < 0.01 and v["batch_loss_bug"] > 0.5 * v["batch_loss_first"]


def test_choosing_on_the_test_set_flatters():
    v, c = results("04_generalization", "tuning_on_test_flatters", "tries_tuned_on_test", "tries_mean")
    assert c["tuning_on_test_flatters"]
    assert v["tries_tuned_on_test"] - v["tries_mean"] > 0.005


def test_transfer_from_another_hospital_beats_training_from_scratch():
    v, c = results("04_generalization", "transfer_beats_scratch", "transfer_finetuned", "transfer_source_only",
                   "transfer_scratch")
    assert c["transfer_beats_scratch"]
    assert min(v["transfer_finetuned"], v["transfer_source_only"]) > v["transfer_scratch"] + 0.01


def test_finetuning_on_100_patches_no_better_than_the_source_network():
    v, c = results("04_generalization", "finetuning_no_better_than_source", "transfer_finetuned",
                   "transfer_source_only")
    assert c["finetuning_no_better_than_source"]
    assert v["transfer_finetuned"] <= v["transfer_source_only"] + 0.01


def test_separable_convolution_keeps_most_accuracy_with_few_weights():
    v, c = results("04_generalization", "separable_keeps_most_accuracy", "separable_weights", "plain_weights",
                   "separable_acc", "plain_acc")
    assert v["separable_weights"] < v["plain_weights"] / 4
    assert c["separable_keeps_most_accuracy"]
    assert v["separable_acc"] >= v["plain_acc"] - 0.03


# ------------------------------------ chapter 6: hand-made vs learned features, post-processing
def test_learned_models_beat_the_handmade_vesselness():
    v, c = results("06_vessel_segmentation", "learned_beats_handmade", "feature_auc_green", "feature_auc_hessian",
                   "feature_auc_learned")
    assert c["learned_beats_handmade"]
    assert v["feature_auc_green"] < v["feature_auc_hessian"] < v["feature_auc_learned"]


def test_connectivity_postprocessing_does_not_pay_at_a_dice_tuned_threshold():
    v, c = results("06_vessel_segmentation", "component_cleanup_helps_some_model", "hysteresis_helps_some_model",
                   "post_cleanup_gain", "post_grow_gain")
    assert not c["component_cleanup_helps_some_model"] and not c["hysteresis_helps_some_model"]
    assert max(v["post_cleanup_gain"].values()) <= 0.002 and max(v["post_grow_gain"].values()) <= 0.002


def test_fov_mask_removes_false_alarms_outside_the_fov():
    v, c = results("06_vessel_segmentation", "fov_mask_removes_outside_false_alarms", "post_whole_dice_before",
                   "post_whole_dice_after", "post_outside_pixels")
    assert c["fov_mask_removes_outside_false_alarms"]
    assert v["post_whole_dice_after"] > v["post_whole_dice_before"] + 0.05 and v["post_outside_pixels"] > 100


# ----------------------------------------------------------- chapter 7: 2.5-D vs 3-D, tubes and brain
def test_networks_beat_intensity_on_the_mni_brain():
    v, c = results("07_beyond", "mni_networks_beat_intensity", "mni_auc_intensity", "mni_auc_mean3",
                   "mni_auc_triplanar", "mni_auc_3d")
    assert c["mni_networks_beat_intensity"]
    assert min(v["mni_auc_triplanar"], v["mni_auc_3d"]) > max(v["mni_auc_intensity"], v["mni_auc_mean3"]) + 0.02


def test_3d_cnn_no_clear_gain_over_triplanar_on_the_mni_brain():
    v, c = results("07_beyond", "mni_3d_no_clear_gain", "mni_auc_3d", "mni_auc_triplanar", "mni_time_ratio")
    assert c["mni_3d_no_clear_gain"]
    assert abs(v["mni_auc_3d"] - v["mni_auc_triplanar"]) < 0.02
    assert v["mni_time_ratio"] > 1
