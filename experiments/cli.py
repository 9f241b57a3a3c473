"""The ``dynsplit`` command line: one console script with subcommands (rl-baselines3-zoo habits).

Every user mistake raises :class:`~dynsplit.splitting.errors.DynsplitError`; :func:`main` prints it as one
line (``dynsplit: error: ...``) and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dynsplit.splitting.errors import DynsplitError

EXIT_USAGE = 2


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="torchvision classifier name (see `dynsplit models`) or package.module:callable")
    parser.add_argument("--input-shape", default=None, help="input shape, e.g. 1x3x224x224 (default: the model's)")
    parser.add_argument("--all-bottlenecks", action="store_true",
                        help="keep every natural bottleneck, not only those smaller than all earlier ones")
    parser.add_argument("--leaf-module", action="append", default=[], metavar="CLASS",
                        help="treat this module class (name or dotted path) as one fx leaf; repeatable")


def _split_graph(args: argparse.Namespace):
    from dynsplit.splitting.graph import split_graph_for
    from dynsplit.splitting.models import parse_input_shape

    shape = parse_input_shape(args.input_shape) if args.input_shape else None
    return split_graph_for(args.model, input_shape=shape, compressive_only=not args.all_bottlenecks,
                           leaf_modules=tuple(args.leaf_module))


# -- models / split-points ------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from dynsplit.splitting.models import classification_model_names

    names = classification_model_names()
    if args.json:
        print(json.dumps(names))
    else:
        print("\n".join(names))
        print(f"\n{len(names)} torchvision classifiers; any nn.Module factory works too as package.module:callable",
              file=sys.stderr)
    return 0


def cmd_split_points(args: argparse.Namespace) -> int:
    graph = _split_graph(args)
    report = graph.verify(n_inputs=args.verify_inputs) if args.verify else None
    data = graph.describe(report)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(f"{data['model']}  input {tuple(data['input_shape'])}  ({data['input_elements']} elements)")
        print(f"{'#':>3}  {'node':<40} {'shape':<22} {'elements':>10}  bottleneck  candidate")
        for p in data["points"]:
            print(f"{p['index']:>3}  {p['node']:<40} {str(tuple(p['shape'])):<22} {p['elements']:>10}  "
                  f"{'yes' if p['bottleneck'] else '':<10}  {'yes' if p['candidate'] else ''}")
        n_bottle = sum(p["bottleneck"] for p in data["points"])
        print(f"{len(data['points'])} split points, {n_bottle} natural bottlenecks, "
              f"candidates: {', '.join(data['candidates'])}")
        if report is not None:
            print(f"verified: {report['exact']}/{report['checked']} cuts bit-exact (every split point, offload and "
                  f"local; {report['n_inputs']} random input(s))")
    if report is not None and report["exact"] != report["checked"]:
        print(f"dynsplit: {report['checked'] - report['exact']} cuts are not bit-exact: "
              f"{', '.join(report['mismatches'])}", file=sys.stderr)
        return 1
    return 0


# -- profile --------------------------------------------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    from dynsplit.splitting.profile import load_profile, merge_profiles
    from dynsplit.splitting.profiler import ProfilerOptions, profile_graph

    if args.merge:
        if len(args.merge) != 2:
            raise DynsplitError("--merge takes two files: DEVICE.json SERVER.json")
        merged = merge_profiles(load_profile(args.merge[0]), load_profile(args.merge[1]))
        merged.save(args.output)
        print(f"wrote {args.output} ({merged.model}, {merged.n_actions} actions)", file=sys.stderr)
        return 0
    if args.model is None:
        raise DynsplitError("give a MODEL to profile (or --merge DEVICE.json SERVER.json)")
    graph = _split_graph(args)
    options = ProfilerOptions(
        codecs=tuple(args.codecs.split(",")),
        batch_sizes=tuple(_positive_ints(args.batch_sizes, "--batch-sizes")),
        role=args.role,
        device_slowdown=args.device_slowdown,
        server_device=args.server_device,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    profile = profile_graph(graph, options, progress=lambda msg: print(f"profile: {msg}", file=sys.stderr))
    profile.save(args.output)
    _print_profile(profile)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _positive_ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DynsplitError(f"{flag} expects comma-separated positive integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise DynsplitError(f"{flag} expects comma-separated positive integers, got '{text}'")
    return values


def _print_profile(profile) -> None:
    codecs = list(profile.codecs)
    b_max = max(profile.batch_sizes)
    head = f"{'action':<28} {'device ms':>10} {'server ms b=1':>14} {f'b={b_max}':>9}  " + "  ".join(
        f"{c + ' kB':>12}" for c in codecs)
    print(head)
    for c in profile.candidates:
        print(f"{c.name:<28} {1e3 * c.device_head_s:>10.2f} {1e3 * c.server_tail_s[min(profile.batch_sizes)]:>14.2f} "
              f"{1e3 * c.server_tail_s[b_max]:>9.2f}  " + "  ".join(f"{c.bytes[k] / 1e3:>12.1f}" for k in codecs))


# -- traces -----------------------------------------------------------------------------------------------------
def cmd_traces(args: argparse.Namespace) -> int:
    from dynsplit.envs import bundled
    from dynsplit.envs.traces import load_channel, summarize

    if args.path is None:
        rows = bundled.describe_bundled()
        if args.json:
            print(json.dumps(rows, indent=1, default=str))
            return 0
        print(f"{'name':<24} {'kind':<8} {'files':>5}  description")
        for row in rows:
            print(f"{row['name']:<24} {row['kind']:<8} {row['files']:>5}  {row['description']}")
        return 0
    traces = load_channel(args.path, bin_s=args.bin_s, rate_scale=args.rate_scale)
    summary = summarize(traces)
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
    else:
        mbps = 1e-6
        print(f"{args.path}: {summary['files']} traces, {summary['duration_s'] / 3600:.2f} h")
        print(f"rate over 1 s bins (Mbit/s): mean {summary['mean_bps'] * mbps:.3f}  median {summary['median_bps'] * mbps:.3f}"
              f"  p10 {summary['p10_bps'] * mbps:.3f}  p90 {summary['p90_bps'] * mbps:.3f}"
              f"  min {summary['min_bps'] * mbps:.3f}  max {summary['max_bps'] * mbps:.3f}")
    if args.plot:
        from dynsplit.experiments.trace_plots import plot_channel

        plot_channel(traces, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


# -- parser ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from dynsplit import __version__

    parser = argparse.ArgumentParser(prog="dynsplit", description="Dynamic split computing with RL split controllers.")
    parser.add_argument("--version", action="version", version=f"dynsplit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("models", help="list the torchvision classifiers that can be split")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("split-points", help="candidate split points, bottlenecks, shapes")
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verify", action="store_true", help="check tail(head(x)) == model(x) bit-exactly at every point")
    p.add_argument("--verify-inputs", type=int, default=1, help="random inputs per check (default 1)")
    p.set_defaults(func=cmd_split_points)

    p = sub.add_parser("profile", help="measure device/server times and bytes per candidate")
    p.add_argument("model", nargs="?", default=None,
                   help="torchvision classifier name or package.module:callable")
    p.add_argument("--input-shape", default=None, help="input shape, e.g. 1x3x224x224")
    p.add_argument("--all-bottlenecks", action="store_true", help="keep every natural bottleneck")
    p.add_argument("--leaf-module", action="append", default=[], metavar="CLASS")
    p.add_argument("-o", "--output", required=True, help="profile JSON to write")
    p.add_argument("--role", default="both", help="device, server or both (default: both, device emulated)")
    p.add_argument("--device-slowdown", type=float, default=None,
                   help="factor on device times of the emulated device (default 10 with --role both, else 1)")
    p.add_argument("--codecs", default="raw,float16,int8", help="comma-separated codec specs (default raw,float16,int8)")
    p.add_argument("--batch-sizes", default="1,2,4,8", help="server batch sizes (default 1,2,4,8)")
    p.add_argument("--server-device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median; default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--merge", nargs="+", metavar="FILE", help="merge DEVICE.json SERVER.json into -o instead")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("traces", help="list bundled traces, or summarise a trace file, folder or name")
    p.add_argument("path", nargs="?", default=None, help="bundled name, file or folder")
    p.add_argument("--bin-s", type=float, default=0.1, help="bin of Mahimahi traces in seconds (default 0.1)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply every rate (default 1)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="draw the traces to a PNG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_traces)

    from dynsplit.experiments import commands

    commands.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) == "profile" and args.device_slowdown is None:
        from dynsplit.splitting.profiler import DEFAULT_DEVICE_SLOWDOWN

        args.device_slowdown = DEFAULT_DEVICE_SLOWDOWN if args.role == "both" else 1.0
    try:
        return int(args.func(args) or 0)
    except DynsplitError as exc:
        print(f"dynsplit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dynsplit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
