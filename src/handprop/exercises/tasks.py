"""Every gradable task: the chapter exercises and the assignments' tasks, with their points.

A :class:`Task` says which notebook it lives in, which names the student's notebook defines for it
(passed to the checker in that order), the checker, and which library functions answer it (they
are switched off while the student's code runs: :mod:`handprop.exercises.grading`).

``python -m handprop.exercises list`` prints this table; the pytest marker of a task is
``task_<id>`` (``pytest -m task_bn_backward``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["Task", "TASKS", "NOTEBOOKS", "task_by_id", "tasks_of", "notebook_of_name"]

_ENGINES = ("handprop.kernels.reference", "handprop.kernels.im2col", "handprop.kernels.numba_cpu")


def _engines(*ops):
    return tuple(f"{module}:{op}" for module in _ENGINES for op in ops)


@dataclass(frozen=True)
class Task:
    id: str                 # the marker is task_<id>
    notebook: str           # the notebook id: "03_convolutional_networks", "A1_batchnorm", ...
    title: str
    points: int
    names: tuple            # what the student's notebook defines, passed to the checker in order
    check: str              # "module:function" of the checker
    disables: tuple = ()    # library functions switched off while the student's code runs

    def checker(self):
        module, _, name = self.check.partition(":")
        return getattr(importlib.import_module(module), name)


_C = "handprop.exercises"
_CONV_ENGINE = _engines("conv2d_forward", "conv2d_backward", "conv2d", "conv2d_input_grad", "conv2d_weight_grad")
_POOL_ENGINE = _engines("maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward")
_BN = ("handprop.layers.normalization:batchnorm_forward", "handprop.layers.normalization:batchnorm_backward")
_OPT = tuple(f"handprop.optimizers:{c}.{m}" for c in ("SGD", "RMSprop", "AdaGrad", "Adam") for m in ("step", "_update"))
_FIT = ("handprop.training:fit", "handprop.training:train_on_batch", "handprop.training:train_epoch",
        "handprop.training:evaluate", "handprop.training:validate",
        *(f"handprop.model:BaseModel.{m}" for m in ("fit", "evaluate", "train_on_batch", "train_step")))

TASKS = [
    # chapter exercises: 2 points each
    Task("ch1_dense_backward", "01_neural_networks", "dense layer backward", 2, ("dense_backward",),
         f"{_C}:check_dense_backward", ("handprop.layers.dense:Dense.backward",)),
    Task("ch1_softmax_cross_entropy", "01_neural_networks", "softmax cross-entropy and its gradient", 2,
         ("softmax_cross_entropy",), f"{_C}:check_softmax_cross_entropy",
         ("handprop.losses:SoftmaxCrossEntropy.forward", "handprop.losses:SoftmaxCrossEntropy.backward")),
    Task("ch1_network_backward", "01_neural_networks", "backprop through a small network", 2, ("network_backward",),
         f"{_C}:check_network_backward", ("handprop.layers.dense:Dense.backward",)),
    Task("ch2_largest_stable_lr", "02_optimization", "the largest stable learning rate", 2, ("largest_stable_lr",),
         f"{_C}:check_largest_stable_lr"),
    Task("ch2_momentum_step", "02_optimization", "SGD with momentum", 2, ("momentum_step",),
         f"{_C}:check_momentum_step", _OPT),
    Task("ch2_adam_step", "02_optimization", "Adam", 2, ("adam_step",), f"{_C}:check_adam_step", _OPT),
    Task("ch3_output_size", "03_convolutional_networks", "output size of a convolution", 2, ("output_size",),
         f"{_C}:check_output_size", ("handprop.kernels.geometry:output_size",)),
    Task("ch3_conv2d_backward", "03_convolutional_networks", "backward pass of a convolution", 2,
         ("conv2d_backward",), f"{_C}:check_conv2d_backward", _CONV_ENGINE),
    Task("ch3_receptive_field", "03_convolutional_networks", "receptive fields", 2, ("receptive_field",),
         f"{_C}:check_receptive_field", ("handprop:receptive_field", "handprop.receptive_field:receptive_field")),
    Task("ch4_regularized_gradient", "04_generalization", "L2 and L1 in the gradient", 2, ("regularized_gradient",),
         f"{_C}:check_regularized_gradient", _OPT),
    Task("ch4_early_stopping", "04_generalization", "early stopping", 2, ("early_stopping",),
         f"{_C}:check_early_stopping", ("handprop.callbacks:EarlyStopping.on_epoch_end",)),
    Task("ch4_dropout", "04_generalization", "inverted dropout", 2, ("dropout_forward",), f"{_C}:check_dropout",
         ("handprop.layers.dropout:Dropout.forward",)),
    Task("ch5_parameter_counts", "05_getting_started", "parameter counts", 2, ("conv_params", "dense_params"),
         f"{_C}:check_parameter_counts", ("handprop.layers.base:Layer.count_params",)),
    Task("ch5_keras_translation", "05_getting_started", "the Keras 1 network in handprop", 2,
         ("build_vessel_convnet",), f"{_C}:check_keras_translation",
         ("handprop.architectures:patch_cnn", "handprop.architectures.patches:patch_cnn")),
    Task("ch6_segmentation_scores", "06_vessel_segmentation", "segmentation scores in the FOV", 2,
         ("segmentation_scores",), f"{_C}:check_segmentation_scores",
         tuple(f"handprop.metrics:{m}" for m in ("dice", "sensitivity", "specificity", "pixel_accuracy"))),
    Task("ch6_dense_to_conv", "06_vessel_segmentation", "a Dense layer as a convolution", 2, ("dense_to_conv",),
         f"{_C}:check_dense_to_conv", ("handprop.inference:to_fully_convolutional",)),
    Task("ch7_conv3d_shape_and_params", "07_beyond", "a 3-D convolution's shape and parameters", 2,
         ("conv3d_shape_and_params",), f"{_C}:check_conv3d_shape_and_params"),
    Task("ch7_triplanar_patches", "07_beyond", "triplanar patches", 2, ("triplanar_patches",),
         f"{_C}:check_triplanar_patches", ("handprop.data.volume:extract_triplanar_patches",)),
    # assignment 1: batch normalization
    Task("bn_forward", "A1_batchnorm", "batch-norm forward (training)", 5, ("batchnorm_forward",),
         f"{_C}.batchnorm:check_bn_forward", _BN),
    Task("bn_backward", "A1_batchnorm", "batch-norm backward (the computational graph)", 10,
         ("batchnorm_forward", "batchnorm_backward"), f"{_C}.batchnorm:check_bn_backward", _BN),
    Task("bn_backward_alt", "A1_batchnorm", "batch-norm backward (simplified)", 5,
         ("batchnorm_forward", "batchnorm_backward_alt"), f"{_C}.batchnorm:check_bn_backward_alt", _BN),
    Task("bn_spatial", "A1_batchnorm", "spatial batch norm for (N, C, H, W)", 5, ("spatial_batchnorm_forward",),
         f"{_C}.batchnorm:check_bn_spatial", _BN),
    # assignment 2: pooling
    Task("maxpool_forward", "A2_pooling", "max-pool forward", 3, ("maxpool_forward",),
         f"{_C}.pooling:check_maxpool_forward", _POOL_ENGINE),
    Task("maxpool_backward", "A2_pooling", "max-pool backward", 7, ("maxpool_forward", "maxpool_backward"),
         f"{_C}.pooling:check_maxpool_backward", _POOL_ENGINE),
    Task("avgpool_forward", "A2_pooling", "average-pool forward", 3, ("avgpool_forward",),
         f"{_C}.pooling:check_avgpool_forward", _POOL_ENGINE),
    Task("avgpool_backward", "A2_pooling", "average-pool backward", 7, ("avgpool_forward", "avgpool_backward"),
         f"{_C}.pooling:check_avgpool_backward", _POOL_ENGINE),
    # assignment 3: im2col convolution
    Task("im2col", "A3_im2col", "im2col: windows as columns", 5, ("im2col",), f"{_C}.im2col:check_im2col",
         ("handprop.kernels.im2col:im2col", "handprop.kernels.im2col:col2im")),
    Task("conv_forward_im2col", "A3_im2col", "convolution forward as one matrix product", 5,
         ("conv_forward_im2col",), f"{_C}.im2col:check_conv_forward_im2col", _CONV_ENGINE),
    Task("conv_backward_im2col", "A3_im2col", "convolution backward with col2im", 10,
         ("conv_forward_im2col", "conv_backward_im2col"), f"{_C}.im2col:check_conv_backward_im2col",
         _CONV_ENGINE + ("handprop.kernels.im2col:col2im",)),
    # assignment 4: the training loop
    Task("minibatches", "A4_training_loop", "minibatches of one epoch", 3, ("minibatches",),
         f"{_C}.training_loop:check_minibatches", _FIT),
    Task("train_step", "A4_training_loop", "one training step", 5, ("train_step",),
         f"{_C}.training_loop:check_train_step", _FIT),
    Task("evaluate", "A4_training_loop", "evaluation in inference mode", 4, ("evaluate",),
         f"{_C}.training_loop:check_evaluate", _FIT),
    Task("train", "A4_training_loop", "the training loop with validation", 5, ("minibatches", "train"),
         f"{_C}.training_loop:check_train", _FIT),
    Task("cnn", "A4_training_loop", "a CNN trained with your loop (test digits)", 3, ("cnn",),
         f"{_C}.training_loop:check_cnn", _FIT),
    # assignment 5: update rules
    Task("nesterov_step", "A5_update_rules", "Nesterov momentum as an update rule", 4, ("nesterov_step",),
         f"{_C}.update_rules:check_nesterov_step", _OPT),
    Task("rmsprop_step", "A5_update_rules", "RMSprop as an update rule", 4, ("rmsprop_step",),
         f"{_C}.update_rules:check_rmsprop_step", _OPT),
    Task("adagrad_step", "A5_update_rules", "AdaGrad as an update rule", 4, ("adagrad_step",),
         f"{_C}.update_rules:check_adagrad_step", _OPT),
]

TASKS.append(Task("project", "A6_vessel_project", "project: vessel segmentation on hidden test patients", 20,
                  ("segment",), f"{_C}.project:check_project"))

NOTEBOOKS = {
    "A1_batchnorm": "Assignment 1: batch normalization",
    "A2_pooling": "Assignment 2: pooling",
    "A3_im2col": "Assignment 3: convolution by im2col",
    "A4_training_loop": "Assignment 4: the training loop",
    "A5_update_rules": "Assignment 5: update rules",
    "A6_vessel_project": "Assignment 6 (project): vessel segmentation",
}
for _task in TASKS:
    NOTEBOOKS.setdefault(_task.notebook, _task.notebook.replace("_", " "))


def task_by_id(task_id):
    for task in TASKS:
        if task.id == task_id:
            return task
    raise KeyError(f"no task {task_id!r}; `python -m handprop.exercises list` lists them")


def tasks_of(notebook):
    return [t for t in TASKS if t.notebook == notebook]


def notebook_of_name(stem):
    """The notebook id in a file name: ``"A1_batchnorm"`` for ``smith_A1_batchnorm_solutions``; None if none."""
    found = [nb for nb in NOTEBOOKS if nb in stem]
    return max(found, key=len) if found else None
