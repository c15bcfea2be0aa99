"""The "The slide says" boxes: where the deck is wrong or loose, a markdown cell that begins with
those words and says what is precise, next to the cell that teaches the topic."""

import importlib.util
from pathlib import Path

import pytest

import handprop as hp

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_build_boxes", ROOT / "notebooks" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# (chapter source, a phrase of the box, a word of the cell before or after it: the topic)
BOXES = [
    ("01_neural_networks", "a unit also has a **bias**", "single unit"),
    ("01_neural_networks", "accuracy, $L_i = \\mathbb{I}", "accuracy"),
    ("02_optimization", "computing the gradient on all data is infeasible", "minibatch"),
    ("02_optimization", "average the **squared** gradient", "RMSprop"),
    ("02_optimization", "Adam is like RMSprop with momentum", "Adam"),
    ("03_convolutional_networks", "nine 3×3 layers give **133**, not 131", "dilat"),
    ("04_generalization", "stop at the point where the validation loss is minimal", "early stopping"),
    ("04_generalization", "averaging the outputs of the networks", "ensemble"),
    ("04_generalization", "multiply all outgoing weights by $p$", "dropout"),
    ("04_generalization", "\\lambda \\lVert \\mathbf{w} \\rVert_2$. Precisely", "weight decay"),
    ("04_generalization", "Glorot initialization normalizes", "Glorot"),
    ("04_generalization", "(\\sqrt{\\sigma_B} + \\epsilon)", "batch norm"),
    ("05_getting_started", "next to `nb_epoch=5`, that it is the number of iterations", "iterations"),
    ("05_getting_started", "different versions of the libraries (CUDA, cuDNN)", "seed"),
    ("05_getting_started", "add weight decay to overcome plateaus", "W_regularizer"),
    ("05_getting_started", "Torch is the fastest framework", "training step"),
    ("05_getting_started", "validation accuracy is higher than the training accuracy", "val_accuracy"),
    ("06_vessel_segmentation", "**whitening** also decorrelates", "normaliz"),
    ("06_vessel_segmentation", "rapidly increases the\nnumber of weights", "patch"),
    ("07_beyond", "use generative models", "autoencoder"),
    ("07_beyond", "zero-sum game", "GAN"),
]


def _cells(chapter):
    return build.parse_source(ROOT / "notebooks" / "source" / f"{chapter}.py")


@pytest.mark.parametrize("chapter, phrase, topic", BOXES, ids=[f"{c[:2]}-{t}" for c, _, t in BOXES])
def test_box_exists_next_to_its_topic(chapter, phrase, topic):
    cells = _cells(chapter)
    found = [i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and phrase in cell.source]
    assert len(found) == 1, f"{chapter}: no single box with {phrase!r}"
    i = found[0]
    box = cells[i].source
    assert box.startswith("The slide says") and "Precisely" in box
    assert "tags" not in cells[i].metadata  # a plain lesson cell (not an exercise, not a setup cell)
    neighbours = " ".join(cells[j].source for j in (i - 1, i + 1) if 0 <= j < len(cells)).lower()
    assert topic.lower() in neighbours, f"{chapter}: the box on {phrase!r} is not next to the {topic} cells"


def test_every_box_is_listed():
    """A box added to a chapter (or one taken out) must be listed here, with its topic."""
    chapters = sorted({c for c, _, _ in BOXES} | {"05_getting_started"})
    boxes = [(c, cell.source) for c in chapters for cell in _cells(c)
             if cell.cell_type == "markdown" and cell.source.startswith("The slide says")]
    assert len(boxes) == len(BOXES)


def test_dilated_box_numbers_are_handprops():
    """The corrected table: nine 3×3 layers reach 133; eight and two 1×1 layers 131."""
    def field(kernels):
        dilations = [1, 1, 2, 4, 8, 16, 32, 1, 1, 1]
        layers = [hp.layers.Conv2D(1, k, dilation=d) for k, d in zip(kernels, dilations)]
        return hp.receptive_field(hp.Sequential(layers, input_shape=(1, None, None)))
    assert field([3] * 9 + [1]) == [3, 5, 9, 17, 33, 65, 129, 131, 133, 133]
    assert field([3] * 8 + [1, 1])[-1] == 131
    box = next(cell.source for cell in _cells("03_convolutional_networks") if "**133**" in cell.source)
    assert "3, 5, 9, 17, 33, 65,\n129, 131, 133, 133" in box or "129, 131, 133, 133" in box.replace("\n", " ")
