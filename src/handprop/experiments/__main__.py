"""``python -m handprop.experiments NAME [--smoke] [--out DIR] [--seed N] [--threads N]``."""

from __future__ import annotations

import argparse
import time

from . import EXPERIMENTS, run


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m handprop.experiments",
                                     description="Run the tutorial's experiments; write a table (Markdown), a "
                                                 "figure (PNG) and the numbers (JSON) per experiment.")
    parser.add_argument("name", choices=[*EXPERIMENTS, "all"], help="an experiment, or all of them")
    parser.add_argument("--out", default=None, help="output folder (default: docs/experiments)")
    parser.add_argument("--smoke", action="store_true", help="trivial sizes: seconds, to check that it runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="handprop.set_num_threads (default 1)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    for name in EXPERIMENTS if args.name == "all" else [args.name]:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        result = run(name, out=args.out, smoke=args.smoke, seed=args.seed, threads=args.threads)
        print(f"== {name}: {time.perf_counter() - start:.0f} s; written: "
              + ", ".join(str(p) for p in result["paths"].values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
