"""Codec throughput and wire size on a 1 MiB float32 activation.

For every codec spec (``raw``, ``float16``, ``int8``, each alone and with ``+zlib``, ``+zstd``, ``+lzma``)
this measures the median encode time, decode time and encode+decode round-trip time (seconds, after one
warm-up, one torch thread) on a 1x64x64x64 float32 tensor (1 MiB = 1,048,576 bytes) drawn as
``relu(N(0, 1))`` — half zeros, like a post-ReLU CNN activation — plus the frame length in bytes.
Throughput is the input size divided by the median round-trip time, in GB/s (10^9 bytes per second).

Prints a table and writes ``benchmarks/results/codecs.json`` (atomically). Usage::

    python benchmarks/bench_codecs.py [--repeats 50] [--max-seconds 3] [-o PATH]

``--max-seconds`` caps the time spent per spec (slow compressors such as lzma then get fewer repeats,
at least 5; the JSON records how many).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from dynsplit.splitting.atomic_files import write_json_atomic
from dynsplit.splitting.codecs import CODEC_SPECS, get_codec

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "codecs.json"
SHAPE = (1, 64, 64, 64)  # float32: 1 MiB
MIN_REPEATS = 5


def _bench_spec(spec: str, x: torch.Tensor, repeats: int, max_seconds: float) -> dict:
    """Median encode / decode / round-trip seconds of ``spec`` on ``x`` and its frame length in bytes."""
    codec = get_codec(spec)
    frame = codec.encode(x)  # warm-up
    codec.decode(frame)
    enc, dec, both = [], [], []
    start = time.perf_counter()
    while len(both) < repeats and (len(both) < MIN_REPEATS or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        frame = codec.encode(x)
        t1 = time.perf_counter()
        codec.decode(frame)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
        both.append(t2 - t0)
    in_bytes = x.numel() * x.element_size()
    roundtrip = statistics.median(both)
    return {
        "spec": spec,
        "frame_bytes": len(frame),
        "ratio": in_bytes / len(frame),
        "encode_s": statistics.median(enc),
        "decode_s": statistics.median(dec),
        "roundtrip_s": roundtrip,
        "roundtrip_gb_per_s": in_bytes / roundtrip / 1e9,
        "repeats": len(both),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per spec (default 50)")
    parser.add_argument(
        "--max-seconds", type=float, default=3.0, help="time cap per spec in seconds (default 3)"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result path")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    x = torch.relu(torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)))
    rows = [_bench_spec(spec, x, args.repeats, args.max_seconds) for spec in CODEC_SPECS]

    print(f"input: float32 {list(SHAPE)} = {x.numel() * 4:,} bytes, relu(N(0,1)); 1 torch thread; medians")
    print(f"{'codec':<14} {'frame B':>10} {'ratio':>6} {'enc ms':>8} {'dec ms':>8} {'GB/s':>8} {'reps':>5}")
    for r in rows:
        print(
            f"{r['spec']:<14} {r['frame_bytes']:>10,} {r['ratio']:>6.2f} {r['encode_s'] * 1e3:>8.3f} "
            f"{r['decode_s'] * 1e3:>8.3f} {r['roundtrip_gb_per_s']:>8.3f} {r['repeats']:>5}"
        )
    result = {
        "benchmark": "codecs",
        "input": {
            "shape": list(SHAPE),
            "dtype": "float32",
            "bytes": x.numel() * 4,
            "distribution": "relu(N(0,1))",
        },
        "units": {"frame_bytes": "bytes", "*_s": "seconds (median)", "roundtrip_gb_per_s": "1e9 bytes/s"},
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "max_repeats": args.repeats,
        "max_seconds_per_spec": args.max_seconds,
        "results": rows,
    }
    write_json_atomic(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
