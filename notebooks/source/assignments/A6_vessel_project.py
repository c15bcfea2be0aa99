# %% [markdown]
# # Assignment 6 (project) — A vessel segmenter for unseen patients
#
# Train a network that segments the retinal vessels of synthetic patients
# (`hp.data.synthetic_retina`, chapter 6) and write `segment(images) -> probabilities`. Your teacher
# grades it on **test patients you never see**: the checker draws them from a seed that is passed
# only at grading time (`python -m handprop.exercises grade --seed S`, or `HANDPROP_GRADE_SEED`).
# Here the checker uses a public practice seed, so you can see your score while you work.
#
# * `images`: `(n, 3, 96, 96)` float32 in [0, 1], exactly as `synthetic_retina(..., size=(96, 96))`
#   returns them (normalize them inside `segment` the way you did for training);
# * return one vessel probability map per image, `(n, 96, 96)`, high on vessels.
#
# The grade: the mean in-FOV ROC AUC must reach 0.85 and beat the green channel's (the tutorial's
# baseline); the Dice (at the best threshold) is reported too. `python -m handprop.exercises leaderboard FOLDER`
# ranks a class's submissions by AUC on the hidden patients. Anything in handprop is allowed here:
# the point is a recipe that generalizes (patients, normalization, architecture, epochs,
# augmentation...).

# %% tags=["setup"]
import os

import matplotlib
import numpy as np

import handprop as hp

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter training for the automated tests
matplotlib.rcParams["figure.dpi"] = 72
hp.set_num_threads(1)

train = hp.data.synthetic_retina(16, seed=0, size=(96, 96))
valid = hp.data.synthetic_retina(4, seed=1, size=(96, 96))
print(train.images.shape, train.vessels.shape, f"{train.vessels[train.fov].mean():.1%} of the FOV is vessel")

# %% [markdown] tags=["exercises"]
# ## The project (20 points)
#
# Train your segmenter in the next cell and define `segment`. A starting point: a small U-Net
# (`hp.segmentation.vessel_unet(3, width=8)`), each image standardized by its own mean and standard
# deviation per channel, `BinaryCrossEntropy(from_logits=True)`, Adam, a few tens of epochs, and
# `hp.segmentation.predict_probabilities` to predict.

# %% tags=["exercise"]
def segment(images):
    # your answer: train a model above this function (in this cell), then predict here
    raise NotImplementedError


# %% tags=["solution"]
def standardize(images):
    mean = images.mean(axis=(2, 3), keepdims=True)
    std = images.std(axis=(2, 3), keepdims=True) + 1e-6
    return ((images - mean) / std).astype(np.float32)


model = hp.segmentation.vessel_unet(3, width=8, seed=0)
model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.Adam(lr=0.005))
history = model.fit(standardize(train.images), train.vessels[:, None].astype(np.float32),
                    validation_data=(standardize(valid.images), valid.vessels[:, None].astype(np.float32)),
                    epochs=20 if QUICK else 40, batch_size=4, verbose=0)


def segment(images):
    return hp.segmentation.predict_probabilities(model, standardize(images))


# %% [markdown]
# Your score on the validation patients (seed 1), and their maps:

# %%
try:
    p_valid = segment(valid.images)
    aucs = [hp.metrics.roc_auc(p_valid[i], valid.vessels[i], mask=valid.fov[i]) for i in range(len(p_valid))]
    print(f"validation in-FOV AUC {np.mean(aucs):.4f}")
    display(hp.viz.plot_segmentation(valid.images[0], valid.vessels[0], p_valid[0], valid.fov[0]))  # noqa: F821
except NotImplementedError:
    print("write segment first")

# %% tags=["check"]
hp.exercises.check_project(segment)
