"""The realism statistics of a fundus image with its vessel and FOV masks, and DRIVE's values.

The definitions are those the numbers for DRIVE were measured with (issue 17's table), inside the
FOV, images scaled to [0, 1]:

* mean and std of R, G, B;
* vessel fraction of the FOV;
* vessel widths: 2 x the Euclidean distance transform of the vessel mask, read on its skeleton
  (scikit-image's ``skeletonize``): median, 90th percentile, share of skeleton pixels <= 3 px,
  and the skeleton's length in pixels;
* green-channel AUC: in-FOV ROC AUC of the inverted green channel as a vessel score;
* local vessel contrast: median over vessel pixels of (25-px median filter of green - green);
* background std: std of green on background pixels more than 3 px from a vessel;
* high-frequency noise: std of (green - Gaussian blur sigma=1 of green) on those background pixels;
* contrast-to-noise: local vessel contrast / high-frequency noise.

scikit-image is a test-only dependency (the ``test`` extra), imported here and nowhere in handprop.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from handprop.metrics import roc_auc

# DRIVE's 20 training and 20 test images, mean over images: (training, test)
DRIVE = {
    "mean_rgb": ([0.709, 0.382, 0.224], [0.739, 0.374, 0.222]),
    "std_rgb": ([0.127, 0.079, 0.043], [0.124, 0.071, 0.040]),
    "vessel_frac": (0.125, 0.127),
    "width_med": (2.87, 2.60),
    "width_p90": (6.05, 6.12),
    "thin_frac": (0.54, 0.55),
    "skeleton_len": (8537, 8871),
    "green_auc": (0.699, 0.725),
    "vessel_contrast": (0.037, 0.037),
    "bg_std": (0.080, 0.072),
    "hf_noise": (0.0125, 0.0124),
    "contrast_to_noise": (3.03, 3.09),
}


def drive_reference(name):
    """DRIVE's value of a statistic: the mean of its training and test sets (an array for the colours)."""
    training, test = DRIVE[name]
    return (np.asarray(training, np.float64) + np.asarray(test, np.float64)) / 2


def image_statistics(image, vessels, fov):
    """The statistics (dict, names as in :data:`DRIVE`) of one (3, H, W) image with its (H, W) masks."""
    from skimage.morphology import skeletonize

    img = np.asarray(image, np.float64)
    img = img / (255.0 if img.max() > 1.5 else 1.0)
    v, f = np.asarray(vessels).astype(bool), np.asarray(fov).astype(bool)
    green = img[1]
    background = f & ~ndimage.binary_dilation(v, iterations=3)
    skeleton = skeletonize(v)
    width = 2 * ndimage.distance_transform_edt(v)[skeleton]
    contrast = float(np.median((ndimage.median_filter(green, 25) - green)[v & f]))
    noise = float(np.std((green - ndimage.gaussian_filter(green, 1.0))[background]))
    return dict(mean_rgb=[float(img[c][f].mean()) for c in range(3)],
                std_rgb=[float(img[c][f].std()) for c in range(3)],
                vessel_frac=float(v[f].mean()), width_med=float(np.median(width)),
                width_p90=float(np.percentile(width, 90)), thin_frac=float((width <= 3).mean()),
                skeleton_len=int(skeleton.sum()), green_auc=float(roc_auc(-green, v, f)),
                vessel_contrast=contrast, bg_std=float(green[background].std()), hf_noise=noise,
                contrast_to_noise=contrast / max(noise, 1e-9))


def mean_statistics(data):
    """The mean over the images of a RetinaData of every statistic: dict name -> float or (3,) array."""
    rows = [image_statistics(data.images[i], data.vessels[i], data.fov[i]) for i in range(len(data))]
    return {name: np.mean([np.asarray(r[name], np.float64) for r in rows], axis=0) for name in DRIVE}
