"""What the chapter notebooks share: a lecture figure style, result sentences rendered from the
numbers a run computed, and the results file that ``tests/test_claims.py`` reads.

A sentence that states a result is never typed by hand: it is a template filled from the run::

    results = hp.lesson.Results("04_generalization")
    results.say("The ensemble of {n} nets reaches accuracy {acc:.3f}.", n=5, acc=ensemble_acc)
    results.claim("ensemble_beats_best_member", ensemble_acc > best_member_acc,
                  "The ensemble beats its best member ({acc:.3f} vs {best:.3f}).",
                  "The ensemble does not beat its best member ({acc:.3f} vs {best:.3f}).",
                  acc=ensemble_acc, best=best_member_acc)
    results.save()      # last cell: notebooks/results/04_generalization.json (full-mode build only)

``say`` shows Markdown (plain text outside Jupyter) and records the values; ``claim`` picks the
sentence that the numbers support, so the prose can never contradict its own output, and records
whether the claim held. ``effect`` does the same for a change that may help, hurt or be too small to tell from the
noise. ``save`` writes the recorded values only where the environment names a
folder (``HANDPROP_RESULTS_DIR``; ``notebooks/build.py`` sets it for the committed full-mode run),
so a student's run never overwrites the committed results. The claim tests assert on those files:
they fail when the sign or the size of an effect changes after a rebuild.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["LECTURE_STYLE", "MODEL_COLORS", "lecture_style", "model_color", "Results", "RESULTS_ENV"]

RESULTS_ENV = "HANDPROP_RESULTS_DIR"

#: Matplotlib settings for figures that can be projected: fonts of at least 12 points and a
#: resolution at which a 8-inch-wide figure is 800 px wide.
LECTURE_STYLE = {
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "figure.titlesize": 15,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "lines.linewidth": 2.0,
}

#: One colour per model, the same in every chapter (matplotlib's tab10 palette).
MODEL_COLORS = {
    "5x5": "tab:blue",
    "11x11": "tab:orange",
    "29x29": "tab:green",
    "dilated": "tab:purple",
    "U-Net": "tab:red",
    "green channel": "tab:gray",
    "multi-scale": "tab:brown",
    "train": "tab:blue",
    "validation": "tab:orange",
}


def lecture_style(compact_png=True):
    """Apply :data:`LECTURE_STYLE` to matplotlib's defaults (call once, in a notebook's setup cell).

    In an IPython kernel, ``compact_png`` also makes every matplotlib figure (``plt.show()``'s
    included) display as :func:`handprop.viz.figure.figure_png` draws it: the inline backend's
    picture stored with an adaptive palette, about a fifth of the bytes at 100 dpi, so that the
    committed notebooks stay small.
    """
    import matplotlib

    matplotlib.rcParams.update(LECTURE_STYLE)
    if compact_png:
        _compact_png_in_ipython()


def _compact_png_in_ipython():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is there wherever notebooks run
        return
    shell = get_ipython()
    if shell is None:
        return
    import matplotlib
    from matplotlib.figure import Figure

    from .viz.figure import figure_png

    if "inline" in str(matplotlib.get_backend()):
        # the inline backend registers its own PNG printer when its module is first imported (at
        # the first figure): import it now, so that ours, registered next, is the one that stays
        import matplotlib.pyplot as plt

        plt.switch_backend(matplotlib.get_backend())
    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def model_color(name):
    """The colour every chapter draws the model ``name`` in (see :data:`MODEL_COLORS`)."""
    try:
        return MODEL_COLORS[name]
    except KeyError:
        raise KeyError(f"model_color: no colour for {name!r}; known: {sorted(MODEL_COLORS)}") from None


def _plain(value):
    """``value`` as JSON can hold it: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _show(text):
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is there wherever notebooks run
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


class Results:
    """The numbers one notebook's run states, and the sentences rendered from them.

    ``chapter`` names the file ``save`` writes (``<chapter>.json``). Values are recorded under
    the keyword names given to :meth:`say`, :meth:`claim` and :meth:`record`; recording a name
    twice keeps the last value.
    """

    def __init__(self, chapter):
        if not isinstance(chapter, str) or not chapter or "/" in chapter:
            raise ValueError(f"Results: chapter must be a file stem such as '04_generalization', got {chapter!r}")
        self.chapter = chapter
        self.saved_to = None  # where save() wrote, if it did
        self.values = {}
        self.claims = {}
        self.claim_values = {}

    def record(self, **values):
        """Keep ``values`` for the results file without showing anything."""
        for name, value in values.items():
            value = _plain(value)
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"Results.record: {name} is NaN; a result sentence cannot state it")
            self.values[name] = value

    def say(self, template, **values):
        """Show ``template.format(**values)`` as Markdown and record ``values``.

        Returns None, so that a notebook cell ending with it shows the sentence once (the text is
        ``template.format(**values)``)."""
        self.record(**values)
        text = template.format(**values)
        _show(text)
        return None

    def claim(self, name, holds, if_true, if_false, **values):
        """Show the sentence the numbers support (``if_true`` when ``holds``) and record the claim.

        ``name`` is the claim's key in the results file (``claims[name]`` is ``True`` or
        ``False``), the name a test in ``tests/test_claims.py`` refers to; the values the sentence
        states are also kept under the claim (``claim_values[name]``), so that two claims may use
        the same keyword names. The verdict is ``self.claims[name]``; returns None (a cell ending
        with a claim shows only its sentence).
        """
        holds = bool(holds)
        self.claims[name] = holds
        self.claim_values[name] = {key: _plain(value) for key, value in values.items()}
        self.say(if_true if holds else if_false, **values)
        return None

    def effect(self, name, change, margin, helps, hurts, no_effect, **values):
        """State the verdict the numbers support on a change ``change`` (new minus reference).

        ``"helps"`` if ``change > margin``, ``"hurts"`` if ``change < -margin``, else ``"no clear
        effect"``; the matching sentence (``helps``, ``hurts`` or ``no_effect``) is shown, formatted
        with ``values`` plus ``change`` and ``margin``. ``margin`` is the size an effect must have
        to count, given the noise of the experiment (seeds, a few hundred patches): a difference
        smaller than that is reported as no clear effect. The verdict is recorded as
        ``claims[name]`` (a string); returns None (read the verdict there).
        """
        verdict = "helps" if change > margin else "hurts" if change < -margin else "no clear effect"
        values = dict(values, change=change, margin=margin)
        self.claims[name] = verdict
        self.claim_values[name] = {key: _plain(value) for key, value in values.items()}
        self.say({"helps": helps, "hurts": hurts, "no clear effect": no_effect}[verdict], **values)
        return None

    def save(self):
        """Write ``<chapter>.json`` into ``$HANDPROP_RESULTS_DIR`` if set (``self.saved_to`` is then
        its path, else None); returns None, so the notebook shows no path."""
        folder = os.environ.get(RESULTS_ENV)
        self.saved_to = None
        if not folder:
            return None
        path = Path(folder) / f"{self.chapter}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"chapter": self.chapter, "values": self.values, "claims": self.claims,
                   "claim_values": self.claim_values}
        path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        self.saved_to = path
        return None


def load_results(chapter, folder=None):
    """The values and claims a full-mode run of ``chapter`` saved (``notebooks/results/`` by default)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parents[2] / "notebooks" / "results"
    path = folder / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `make notebooks` (full mode) to write it")
    return json.loads(path.read_text())
