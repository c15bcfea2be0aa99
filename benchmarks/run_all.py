"""Run every benchmark and write ``benchmarks/results.md`` (and ``results.json``).

    python benchmarks/run_all.py [--quick] [--avx512] [--threads 2] [--rounds 3] [--baseline-src DIR]

1. ``bench_conv.py``: S1-S5 convolution forward + backward for every engine and PyTorch, side by
   side, under both BLAS configurations (``default``: OpenBLAS's own kernel choice, what users
   have; ``haswell``: ``OPENBLAS_CORETYPE=Haswell`` as on the development machines); peak memory
   of a retina-sized (1, 32, 584, 565) step.
2. ``bench_convnet.py``: training throughput of the tutorial ConvNet, handprop vs PyTorch (and,
   with ``--baseline-src``, another checkout's numba engine), both BLAS configurations.
3. ``bench_unet.py``: the issue-13 U-Net (training batch 4 x 256^2, training and inference on a
   whole 576 x 560 image, inference batch 4 x 256^2), both BLAS configurations.
4. ``bench_cold_start.py``: the first Conv2D forward + backward with an empty Numba cache.

The machine (CPU model, cores, load before and after, CPU time stolen by the hypervisor), the
date, the versions and the BLAS library each process loaded are recorded with the numbers: on a
shared machine they matter.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import bench_cold_start  # noqa: E402
import bench_conv  # noqa: E402
import bench_convnet  # noqa: E402
import bench_unet  # noqa: E402


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_times():
    """(busy, steal) jiffies from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v[:3]) + sum(v[5:7]), v[7]
    except (OSError, IndexError, ValueError):
        return None


def load():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def versions():
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "torch", "cupy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # absent, or CuPy without a GPU
            pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 round, fewer steps (a smoke run)")
    ap.add_argument("--avx512", action="store_true", help="add the numba-avx512 variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", help="another checkout's src/ for the ConvNet comparison")
    ap.add_argument("--blas", nargs="*", default=list(bench_unet.BLAS), choices=list(bench_unet.BLAS))
    a = ap.parse_args(argv)
    rounds, reps, steps, unet_steps = (1, 3, 10, 2) if a.quick else (a.rounds, 10, 40, 5)

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "date": datetime.datetime.now().isoformat(" ", "minutes"),
               "load_before": load(), "versions": versions(), "threads": a.threads}  # fmt: skip
    t0 = cpu_times()
    print(f"{machine['cpu']}, {machine['cores']} cores, load {machine['load_before']}")
    results = {"machine": machine, "conv": {}, "convnet": {}}
    md = {"conv": [], "convnet": []}

    engines = bench_conv.available_engines(a.avx512)
    for blas in a.blas:
        speed = bench_conv.bench_speed(engines if blas == "default" else [e for e in engines if e != "numpy"],
                                       rounds, reps, a.threads, blas=blas)  # fmt: skip
        blas_of = {e: speed[e].pop("blas", "") for e in speed}
        speed_md, geomeans = bench_conv.speed_table(speed)
        results["conv"][blas] = {"speed_s": speed, "geomean_ratio_vs_torch": geomeans, "blas": blas_of}
        md["conv"].append(f"### BLAS `{blas}` (numba: {blas_of.get('numba', '?')})\n\n{speed_md}")
        print(md["conv"][-1])
    memory = bench_conv.bench_memory([e for e in engines if e != "numba-avx512"], a.threads)
    memory_md = bench_conv.memory_table(memory)
    results["memory"] = memory
    print(memory_md)

    frameworks = [f for f in ("numba", "numpy", "torch") if f in engines]
    if a.baseline_src:
        frameworks.append("numba-baseline")
    for blas in a.blas:
        convnet, runs = bench_convnet.bench(frameworks, 32, steps, rounds, a.threads, baseline_src=a.baseline_src,
                                            blas=blas)  # fmt: skip
        results["convnet"][blas] = {"samples_per_s": convnet, "runs": runs}
        per_round = "; ".join(f"{f}: " + ", ".join(f"{r['samples_per_s']:.0f}" for r in v) for f, v in runs.items())
        md["convnet"].append(f"### BLAS `{blas}`\n\n{bench_convnet.table(convnet)}\n\nper round (samples/s): "
                             f"{per_round}")
        print(md["convnet"][-1])

    unet = bench_unet.summarize(bench_unet.bench(list(bench_unet.WORKLOADS), a.blas, rounds, unet_steps, a.threads))
    results["unet"] = unet
    unet_md = bench_unet.table(unet)
    print(unet_md)

    cold = bench_cold_start.summarize(bench_cold_start.bench(rounds))
    results["cold_start"] = cold
    cold_md = ("| | seconds |\n|---|---|\n"
               "| first Conv2D forward + backward, empty Numba cache (median; max) | "
               f"**{cold['cold_first_step_s']:.2f}** ({cold['cold_first_step_max_s']:.2f}) |\n"
               f"| the same, CPU time | {cold['cold_first_step_cpu_s']:.2f} |\n"
               f"| first Conv2D forward + backward, warm cache (2nd process) | {cold['warm_first_step_s']:.2f} |\n"
               f"| `import handprop` | {cold['import_s']:.2f} |\n\n"
               f"load {cold['load'][0]:.1f}-{cold['load'][1]:.1f}; the kernels compile in the calling thread; "
               f"stderr of the cold process: \"{cold['note']}\"; of the warm one: \"{cold['warm_note']}\"")  # fmt: skip
    print(cold_md)

    machine["load_after"] = load()
    t1 = cpu_times()
    if t0 and t1:
        machine["steal_percent"] = 100.0 * (t1[1] - t0[1]) / max(1, (t1[0] - t0[0]) + (t1[1] - t0[1]))
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    v = machine["versions"]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(f"# Benchmark results ({machine['date']}, `run_all.py`)\n\n")
        f.write(f"{machine['cpu']}, {machine['cores']} cores, {a.threads} threads per framework, {rounds} rounds; "
                f"{', '.join(f'{k} {val}' for k, val in v.items())}.\n"
                f"Load average before {tuple(round(x, 2) for x in machine['load_before'])}, after "
                f"{tuple(round(x, 2) for x in machine['load_after'])}; CPU steal "
                f"{machine.get('steal_percent', float('nan')):.1f}%. Every framework runs in its own fresh "
                f"process, alternating; ratios are of medians over rounds.\n\n")  # fmt: skip
        f.write("## Convolution forward + backward, float32, median ms (GFLOP/s)\n\n" + "\n\n".join(md["conv"]))
        f.write("\n\n## Peak memory, one (1, 32, 584, 565) 3x3 'same' step, above inputs and results\n\n")
        f.write(memory_md + "\n\n## Tutorial ConvNet training, batch 32\n\n" + "\n\n".join(md["convnet"]))
        f.write("\n\n## U-Net (issue 13), handprop numba vs PyTorch, median ms per step\n\n" + unet_md)
        f.write("\n\n## Cold start\n\n" + cold_md + "\n")
    print(f"\nwrote {os.path.join(HERE, 'results.md')}")
    return results


if __name__ == "__main__":
    main()
