"""The ``handprop`` command.

    handprop demo [--drive PATH] [--out DIR] [--budget full] [--overwrite]
                                               the main job: segment retinal vessels (synthetic
                                               DRIVE-like patients, or a DRIVE folder), print the
                                               in-FOV test metrics, write metrics.json,
                                               probabilities.npz, model.safetensors and figures to DIR
                                               (refused when DIR holds an earlier run's outputs,
                                               unless --overwrite: they are removed first)
    handprop predict MODEL (--drive PATH [--split test|training] | IMAGE...) --out DIR
                                               apply a saved model (the demo's model.safetensors) to
                                               new images: DIR/probabilities.npz keyed by image id,
                                               predictions.json, figures
    handprop demo digits [--out DIR]           train an MLP on the handwritten digits, write
                                               training curves and the optimizer gallery
    handprop gallery  [--out DIR]              only the optimizer-trajectory figures
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_OUT = "handprop-output"


def _matplotlib_headless():
    import matplotlib

    matplotlib.use("Agg")


def build_digits_mlp(seed=0):
    """The demo network: 64 -> 128 -> ReLU -> Dropout -> 10 logits."""
    import handprop as hp

    L = hp.layers
    return hp.Sequential([L.Dense(128, kernel_init="he_uniform"), L.ReLU(), L.Dropout(0.1), L.Dense(10)],
                         seed=seed, input_shape=(64,), name="digits_mlp")


def run_demo(out, epochs=30, batch_size=32, seed=0, verbose=1, gallery=True):
    """Train the digits MLP; write curves (and the optimizer gallery) to ``out``. Returns a dict."""
    _matplotlib_headless()
    import handprop as hp
    from handprop.checks import check_output_folder
    from handprop.data import load_digits

    out = check_output_folder(out, "handprop demo digits")
    (x_train, y_train), (x_test, y_test) = load_digits(test_fraction=0.2, seed=seed)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, 10 classes")
    model = build_digits_mlp(seed)
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(),
                  optimizer=hp.optimizers.SGD(lr=0.05, momentum=0.9),
                  metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        validation_split=0.1, verbose=verbose)
    seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test)
    print(f"test accuracy: {test_acc:.2%} (test loss {test_loss:.4f}) after {len(history.epoch)} epochs "
          f"in {seconds:.1f} s")
    fig = hp.viz.plot_history(history)
    curves = out / "digits_training_curves.png"
    fig.savefig(curves, dpi=100)
    written = [curves]
    if gallery:
        from handprop.viz.gallery import make_gallery

        written += list(make_gallery(out / "optimizers"))
    print(f"figures written to {out.resolve()}:")
    for p in written:
        print(f"  {p}")
    return {"test_accuracy": test_acc, "test_loss": test_loss, "seconds": seconds, "figures": written}


def run_vessels(out, drive=None, epochs=None, steps=None, seed=0, verbose=1, budget="default", overwrite=False):
    """``handprop demo``: :func:`handprop.segmentation.run_vessel_segmentation`."""
    _matplotlib_headless()
    from handprop.segmentation import run_vessel_segmentation

    return run_vessel_segmentation(out, drive=drive, epochs=epochs, steps=steps, seed=seed, verbose=verbose,
                                   budget=budget, overwrite=overwrite)


def _check_counts(parser, args):
    """--epochs, --steps >= 1 and --seed >= 0, refused by argparse (not a traceback from NumPy)."""
    for name, low in (("epochs", 1), ("steps", 1), ("seed", 0)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            parser.error(f"--{name} must be at least {low}, got {value}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="handprop", description="handprop: neural networks by hand")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="segment retinal vessels (default) or train an MLP on the digits",
                          description="handprop demo: retinal vessel segmentation end to end (or: handprop demo "
                                      "digits)")
    demo.add_argument("task", nargs="?", default="vessels", choices=["vessels", "digits"],
                      help="vessels (default): the tutorial's task; digits: an MLP on the handwritten digits")
    demo.add_argument("--drive", default=None, metavar="PATH",
                      help="a DRIVE-layout folder (training/ and test/); default: synthetic patients")
    demo.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    demo.add_argument("--budget", default="default", choices=["default", "full"],
                      help="vessels: default (under 3 minutes on 2 cores for DRIVE) or full (30 epochs x 55 "
                           "steps and four test-time flips: 5.5 min measured for DRIVE-sized data, under 15)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs (vessels: 10, full: 30; digits: 30)")
    demo.add_argument("--steps", type=int, default=None, help="vessels: training steps per epoch (30, full: 55)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-gallery", action="store_true", help="digits: skip the optimizer gallery")
    demo.add_argument("--overwrite", action="store_true",
                      help="vessels: when --out holds an earlier run's outputs, remove them first (else refused)")
    pred = sub.add_parser("predict", help="apply a saved vessel model to new fundus images",
                          description="handprop predict: vessel probabilities of new images with a model saved by "
                                      "handprop demo (its preprocessing, test-time flips and threshold come with it)")
    pred.add_argument("model", help="a model file (handprop demo writes DIR/model.safetensors)")
    pred.add_argument("images", nargs="*", metavar="IMAGE",
                      help="image files (the FOV is estimated from each); or use --drive")
    pred.add_argument("--drive", default=None, metavar="PATH", help="a DRIVE-layout folder (FOV from its masks)")
    pred.add_argument("--split", default="test", choices=["test", "training"], help="with --drive (default test)")
    pred.add_argument("--out", default=str(Path(DEFAULT_OUT) / "predictions"), help="output folder")
    pred.add_argument("--no-figures", action="store_true", help="write probabilities.npz and predictions.json only")
    gal = sub.add_parser("gallery", help="draw the optimizer-trajectory figures")
    gal.add_argument("--out", default=str(Path(DEFAULT_OUT) / "optimizers"))
    args = parser.parse_args(argv)
    _check_counts(parser, args)
    if args.command == "demo" and args.task == "digits":
        if args.drive is not None:
            parser.error("--drive goes with the vessel demo, not with digits")
        try:
            run_demo(args.out, epochs=30 if args.epochs is None else args.epochs, seed=args.seed,
                     gallery=not args.no_gallery)
        except OSError as e:  # the output folder: say what, without a traceback
            parser.exit(2, f"handprop demo: {e}\n")
    elif args.command == "demo":
        from handprop.errors import DataError

        try:
            run_vessels(args.out, drive=args.drive, epochs=args.epochs, steps=args.steps, seed=args.seed,
                        budget=args.budget, overwrite=args.overwrite)
        except (DataError, OSError) as e:  # the data's or the output folder's fault: say what, no traceback
            parser.exit(2, f"handprop demo: {e}\n")
    elif args.command == "predict":
        if (args.drive is None) == (not args.images):
            parser.error("give either --drive PATH or image files, not both and not neither")
        _matplotlib_headless()
        from handprop.errors import DataError
        from handprop.segmentation import run_prediction

        try:
            run_prediction(args.model, args.out, drive=args.drive, split=args.split, images=args.images,
                           figures=not args.no_figures)
        except (DataError, OSError, ValueError) as e:
            parser.exit(2, f"handprop predict: {e}\n")
    elif args.command == "gallery":
        _matplotlib_headless()
        from handprop.viz.gallery import make_gallery

        for p in make_gallery(args.out):
            print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
