"""Overhead of running a model as head + tail instead of whole (DESIGN 1.1).

For each model (default resnet50 and efficientnet_b0; batch 1, 3x224x224, 1 CPU thread) and each candidate,
times ``model(x)`` and ``tail(head(x))`` side by side: every repeat measures the two back to back, in an
order that alternates between repeats, so drifts in machine load hit both alike. Reports, per candidate,
the median wall time of each (seconds) and their ratio ``split / whole`` (dimensionless), and the largest
ratio per model (target <= 1.02: splitting costs no compute, only one extra Python call). Also reported:
the median of the per-repeat ratios (``paired_ratio_median``), which is less sensitive to load drift.

Writes ``benchmarks/results/split_overhead.json`` (atomically) and prints a table.

    python benchmarks/bench_split_overhead.py [--models resnet50 efficientnet_b0] [--repeats 15] [--budget-s 40]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from dynsplit.splitting.atomic_files import write_json_atomic
from dynsplit.splitting.graph import split_graph_for

TARGET_RATIO = 1.02
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "split_overhead.json"


def _time_s(fn, x: torch.Tensor) -> float:
    """Wall time of one call ``fn(x)``, in seconds."""
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def _measure(model, x, pairs, repeats, whole_samples, split_samples) -> None:
    """Time ``model(x)`` and each pair's ``tail(head(x))`` back to back, alternating which goes first."""
    for r in range(repeats):
        for cname, fn in pairs.items():
            if r % 2 == 0:
                whole_samples[cname].append(_time_s(model, x))
                split_samples[cname].append(_time_s(fn, x))
            else:
                split_samples[cname].append(_time_s(fn, x))
                whole_samples[cname].append(_time_s(model, x))


def bench_model(name: str, repeats: int, warmup: int, budget_s: float = 0.0) -> dict:
    """Median times (seconds) of the whole model and of head+tail for every candidate of ``name``.

    At least ``repeats`` timed repeats per candidate; more when they fit in ``budget_s`` seconds of timing
    (medians of more samples resist the noise of a shared machine).
    """
    g = split_graph_for(name)
    model = g.model
    x = torch.randn(g.input_shape, generator=torch.Generator().manual_seed(0))
    pairs = {}
    for c in g.candidates:
        head, tail = g.split(c)
        pairs[c.name] = lambda inp, h=head, t=tail: t(h(inp))
    whole_samples: dict[str, list[float]] = {n: [] for n in pairs}
    split_samples: dict[str, list[float]] = {n: [] for n in pairs}
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
            for fn in pairs.values():
                fn(x)
        one = statistics.median(_time_s(model, x) for _ in range(3))
        repeats = max(repeats, int(budget_s / (2 * len(pairs) * one)))
        gc.collect()
        gc.disable()
        try:
            _measure(model, x, pairs, repeats, whole_samples, split_samples)
        finally:
            gc.enable()
    rows = []
    for c in g.candidates:
        whole = statistics.median(whole_samples[c.name])
        split = statistics.median(split_samples[c.name])
        rows.append(
            {
                "index": c.index,
                "name": c.name,
                "kind": c.kind,
                "elements": c.elements,
                "whole_median_s": whole,
                "split_median_s": split,
                "ratio": split / whole,
                "paired_ratio_median": statistics.median(
                    s / w for s, w in zip(split_samples[c.name], whole_samples[c.name], strict=True)
                ),
            }
        )
    all_whole = [t for ts in whole_samples.values() for t in ts]
    return {
        "model": name,
        "input_shape": list(g.input_shape),
        "repeats": repeats,
        "whole_median_s": statistics.median(all_whole),
        "candidates": rows,
        "max_ratio": max(r["ratio"] for r in rows),
        "max_paired_ratio": max(r["paired_ratio_median"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_b0"])
    parser.add_argument(
        "--repeats", type=int, default=15, help="least timed repeats per candidate (default 15)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=40.0,
        help="timing seconds per model used for extra repeats (default 40)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up rounds (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = []
    for name in args.models:
        res = bench_model(name, args.repeats, args.warmup, args.budget_s)
        results.append(res)
        print(
            f"\n{name}  whole model median {res['whole_median_s'] * 1e3:.2f} ms  (batch 1, {args.threads} thread, {res['repeats']} repeats)"
        )
        print(
            f"  {'#':>2} {'candidate':<28} {'elements':>9} {'whole ms':>9} {'split ms':>9} {'ratio':>7} {'paired':>7}"
        )
        for r in res["candidates"]:
            print(
                f"  {r['index']:>2} {r['name']:<28} {r['elements']:>9} {r['whole_median_s'] * 1e3:>9.2f} "
                f"{r['split_median_s'] * 1e3:>9.2f} {r['ratio']:>7.3f} {r['paired_ratio_median']:>7.3f}"
            )
        verdict = "ok" if res["max_ratio"] <= TARGET_RATIO else "ABOVE TARGET"
        print(
            f"  max ratio {res['max_ratio']:.3f} (target <= {TARGET_RATIO}) {verdict}; "
            f"max paired ratio {res['max_paired_ratio']:.3f}"
        )
    elapsed = time.perf_counter() - started
    report = {
        "benchmark": "split_overhead",
        "description": "median wall time of tail(head(x)) vs model(x) per candidate; ratio = split / whole",
        "units": {"*_median_s": "seconds", "ratio": "dimensionless"},
        "target_max_ratio": TARGET_RATIO,
        "threads": args.threads,
        "min_repeats": args.repeats,
        "budget_s_per_model": args.budget_s,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "host": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "elapsed_s": elapsed,
        "max_ratio": max(r["max_ratio"] for r in results),
        "max_paired_ratio": max(r["max_paired_ratio"] for r in results),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "models": results,
    }
    write_json_atomic(args.output, report)
    print(f"\nwrote {args.output} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
