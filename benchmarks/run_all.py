"""Run every benchmark and write ``benchmarks/results.md`` (and ``results.json``).

    python benchmarks/run_all.py [--quick] [--avx512]

1. ``bench_conv.py``: S1-S5 convolution forward + backward for every engine and PyTorch, side by
   side; peak memory of a retina-sized (1, 32, 584, 565) step.
2. ``bench_convnet.py``: training throughput of the tutorial ConvNet, handprop vs PyTorch.

The machine (CPU model, cores, load before and after, CPU time stolen by the hypervisor), the
date and the versions are recorded with the numbers: on a shared machine they matter.
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

import bench_conv  # noqa: E402
import bench_convnet  # noqa: E402


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
    a = ap.parse_args(argv)
    rounds, reps, steps = (1, 3, 10) if a.quick else (3, 10, 40)

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "date": datetime.datetime.now().isoformat(" ", "minutes"),
               "load_before": load(), "versions": versions(), "threads": a.threads}  # fmt: skip
    t0 = cpu_times()
    print(f"{machine['cpu']}, {machine['cores']} cores, load {machine['load_before']}")

    engines = bench_conv.available_engines(a.avx512)
    speed = bench_conv.bench_speed(engines, rounds, reps, a.threads)
    speed_md, geomeans = bench_conv.speed_table(speed)
    print(speed_md)
    memory = bench_conv.bench_memory(engines, a.threads)
    memory_md = bench_conv.memory_table(memory)
    print(memory_md)
    frameworks = [f for f in ("numba", "numpy", "torch") if f in engines]
    convnet = bench_convnet.bench(frameworks, 32, steps, rounds, a.threads)
    convnet_md = bench_convnet.table(convnet)
    print(convnet_md)

    machine["load_after"] = load()
    t1 = cpu_times()
    if t0 and t1:
        machine["steal_percent"] = 100.0 * (t1[1] - t0[1]) / max(1, (t1[0] - t0[0]) + (t1[1] - t0[1]))
    results = {"machine": machine, "speed_s": speed, "geomean_ratio_vs_torch": geomeans, "memory": memory,
               "convnet_samples_per_s": convnet}  # fmt: skip
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    v = machine["versions"]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(f"# Benchmark results ({machine['date']})\n\n")
        f.write(f"{machine['cpu']}, {machine['cores']} cores, {a.threads} threads per engine; "
                f"{', '.join(f'{k} {val}' for k, val in v.items())}.\n"
                f"Load average before {tuple(round(x, 2) for x in machine['load_before'])}, after "
                f"{tuple(round(x, 2) for x in machine['load_after'])}; CPU steal "
                f"{machine.get('steal_percent', float('nan')):.1f}%.\n\n")  # fmt: skip
        f.write("## Convolution forward + backward, float32, median ms (GFLOP/s)\n\n" + speed_md + "\n\n")
        f.write("## Peak memory, one (1, 32, 584, 565) 3x3 'same' step, above inputs and results\n\n")
        f.write(memory_md + "\n\n## Tutorial ConvNet training, batch 32\n\n" + convnet_md + "\n")
    print(f"\nwrote {os.path.join(HERE, 'results.md')}")
    return results


if __name__ == "__main__":
    main()
