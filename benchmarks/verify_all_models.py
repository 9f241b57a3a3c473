"""Split every torchvision classifier and check head-then-tail is bit-exact at every cut.

For each model of ``dynsplit models`` (random weights, its default input shape): split points, natural
bottlenecks, kept candidates, and ``SplitGraph.verify`` (``torch.equal`` of ``tail(head(x))`` with
``model(x)`` at every split point, offload and local, on one random input), with the wall time. Prints a
table and writes ``benchmarks/results/all_models.json``. About 25 minutes with one torch thread (vit_h_14 alone about 4.5).

Run: ``.venv/bin/python benchmarks/verify_all_models.py [--models a,b]``
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import torch

from dynsplit.splitting.atomic_files import write_json_atomic
from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.graph import split_graph_for
from dynsplit.splitting.models import classification_model_names

RESULTS = Path(__file__).resolve().parent / "results" / "all_models.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma list (default: every torchvision classifier)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.models.split(",") if args.models else classification_model_names()
    rows = []
    print(f"{'model':<22} {'points':>6} {'bottlenecks':>11} {'candidates':>10} {'exact':>9} {'s':>7}")
    for name in names:
        start = time.perf_counter()
        try:
            graph = split_graph_for(name)
            report = graph.verify()
            row = {"model": name, "points": len(graph.points), "bottlenecks": sum(p.bottleneck for p in graph.points),
                   "candidates": len(graph.candidates), "checked": report["checked"], "exact": report["exact"],
                   "mismatches": report["mismatches"], "error": None}
        except DynsplitError as exc:
            row = {"model": name, "error": str(exc)}
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if row["error"]:
            print(f"{name:<22} error: {row['error']}")
        else:
            print(f"{name:<22} {row['points']:>6} {row['bottlenecks']:>11} {row['candidates']:>10} "
                  f"{row['exact']:>4}/{row['checked']:<4} {row['seconds']:>7.1f}", flush=True)
        graph = None
        gc.collect()
    ok = sum(1 for r in rows if not r["error"] and r["exact"] == r["checked"])
    print(f"{ok}/{len(rows)} models bit-exact at every cut")
    write_json_atomic(RESULTS, {"torch": torch.__version__, "input": "each model's default shape, random weights",
                                "models": rows, "all_exact": ok == len(rows),
                                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
