"""Time to profile every candidate of a model (target for resnet50: <= 10 s), and the profile's sanity.

Measures the wall time of tracing + building heads/tails (``SplitGraph``) and of ``profile_graph`` with the
default options (both roles, codecs raw/float16/int8, batch sizes 1/2/4/8, 7 repeats after 2 warm-ups),
and reports ``chain_over_full`` (sum of segment medians over the whole model's median: close to 1 means
the summed segment times are faithful). Prints a table and writes ``benchmarks/results/profile.json``.

Run: ``.venv/bin/python benchmarks/bench_profile.py [--models resnet50,mobilenet_v3_large]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dynsplit.splitting.graph import split_graph_for
from dynsplit.splitting.profile import write_json_atomic
from dynsplit.splitting.profiler import ProfilerOptions, profile_graph

RESULTS = Path(__file__).resolve().parent / "results" / "profile.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v3_large,efficientnet_b0")
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        start = time.perf_counter()
        graph = split_graph_for(model)
        graph_s = time.perf_counter() - start
        start = time.perf_counter()
        profile = profile_graph(graph, ProfilerOptions())
        profile_s = time.perf_counter() - start
        rows.append({
            "model": model, "candidates": profile.n_actions, "graph_s": graph_s, "profile_s": profile_s,
            "total_s": graph_s + profile_s, "device_chain_over_full": profile.device.get("chain_over_full"),
            "server_chain_over_full": profile.server.get("chain_over_full"),
            "device_full_model_ms": 1e3 * profile.device.get("full_model_s", float("nan")),
            "server_full_model_ms": 1e3 * profile.server.get("full_model_s", float("nan")),
        })
    print(f"{'model':<22} {'actions':>7} {'graph s':>8} {'profile s':>10} {'total s':>8} {'dev chain/full':>15} "
          f"{'srv chain/full':>15}")
    for r in rows:
        print(f"{r['model']:<22} {r['candidates']:>7} {r['graph_s']:>8.2f} {r['profile_s']:>10.2f} {r['total_s']:>8.2f} "
              f"{r['device_chain_over_full']:>15.3f} {r['server_chain_over_full']:>15.3f}")
    write_json_atomic(RESULTS, {"options": "defaults (both roles, raw/float16/int8, batch 1/2/4/8, 7 repeats)",
                                "rows": rows, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
