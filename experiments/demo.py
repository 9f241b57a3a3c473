"""``dynsplit demo``: the whole pipeline on the bundled defaults, in minutes.

1. **Profile** — the bundled profile of ``mobilenet_v3_large`` (measured on a 2-core x86 host, device
   emulated as one thread x 10), or ``--reprofile`` to measure this host (cached in ``OUTDIR/profile.json``).
   Prints which split wins at which constant uplink rate.
2. **Train** PPO briefly on the Mahimahi LTE uplink training traces (``OUTDIR/train``, TensorBoard logs
   in ``OUTDIR/tb``).
3. **Evaluate** every baseline and the trained agent on the held-out uplink traces, on identical requests
   (``OUTDIR/eval``: results.json, requests.csv, summary.md and figures).
4. Print the table, how often the oracle's choice changes, the argmin-oracle gap, and how to open
   TensorBoard.

Why these defaults (see the README): with the int8 codec, a device 10x slower than one server core and
the uplink traces scaled x5 (4-65 Mbit/s means), the best action moves between local, two mid-network
splits and offload along the traces, so the choice really matters request by request.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from dynsplit.splitting.errors import DynsplitError

DEMO_MODEL = "mobilenet_v3_large"
DEMO_TIMESTEPS = 100_000


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo in OUTDIR")
    parser.add_argument("-n", "--n-timesteps", type=int, default=DEMO_TIMESTEPS,
                        help=f"PPO training requests (default {DEMO_TIMESTEPS:,})")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and evaluation (default 0)")
    parser.add_argument("--reprofile", action="store_true",
                        help="measure the model on this host instead of using the bundled profile")
    parser.add_argument("--max-eval-requests", type=int, default=None,
                        help="cap requests per evaluation trace (default: walk every trace once)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(args: argparse.Namespace) -> int:
    from dynsplit.envs.profiles import bundled_profiles_dir
    from dynsplit.experiments import evaluate, plots
    from dynsplit.experiments.config import load_hyperparams
    from dynsplit.experiments.train import train
    from dynsplit.splitting.profile import load_profile

    if args.n_timesteps < 1:
        raise DynsplitError(f"--n-timesteps must be a positive integer, got {args.n_timesteps}")
    outdir = Path(args.output)
    if outdir.exists() and any(outdir.iterdir()):
        if not args.overwrite:
            raise DynsplitError(f"{outdir} already holds a demo (pass --overwrite to replace it)")
        for sub in ("train", "tb", "eval"):
            shutil.rmtree(outdir / sub, ignore_errors=True)
    outdir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress and sys.stderr.isatty()
    start = time.perf_counter()

    # 1. profile ------------------------------------------------------------------------------------------
    t0 = _step("1/3 profile")
    if args.reprofile:
        profile_path = outdir / "profile.json"
        if not profile_path.is_file():
            from dynsplit.splitting.graph import split_graph_for
            from dynsplit.splitting.profiler import ProfilerOptions, profile_graph

            graph = split_graph_for(DEMO_MODEL)
            profile_graph(graph, ProfilerOptions(), progress=lambda m: print(f"profile: {m}")).save(profile_path)
            print(f"measured {DEMO_MODEL} on this host -> {profile_path}")
        else:
            print(f"using the cached profile {profile_path}")
    else:
        profile_path = bundled_profiles_dir() / f"{DEMO_MODEL}.json"
        print(f"using the bundled profile {profile_path} (--reprofile measures this host)")
    profile = load_profile(profile_path)
    device = profile.device
    print(f"{profile.model}: {profile.n_actions} actions ({', '.join(profile.names)}); device emulated as "
          f"{device.get('threads', '?')} thread x {device.get('slowdown', 1):g}; local latency "
          f"{1e3 * profile.candidates[-1].device_head_s:.1f} ms")
    print("best action at a constant uplink rate (codec int8, no server load):")
    for line in plots.format_crossovers(plots.crossover_rates(profile, codec="int8")):
        print(f"  {line}")
    print(f"[{time.perf_counter() - t0:.1f} s]")

    # 2. train ----------------------------------------------------------------------------------------------
    t0 = _step(f"2/3 train PPO for {args.n_timesteps:,} requests")
    overrides = [f"n_timesteps:{args.n_timesteps}"]
    if args.reprofile:
        overrides.append(f"env_kwargs.profile:{profile_path}")
    hyperparams = load_hyperparams("ppo", overrides=overrides)
    run_dir = train("ppo", hyperparams, seed=args.seed, run_dir=outdir / "train", tensorboard_log=outdir / "tb",
                    eval_freq=max(args.n_timesteps // 5, 1), progress=progress, verbose=0)
    # The final model, not best_model.zip: that one was picked by evaluations on the held-out traces that
    # are evaluated below, so reporting it there would flatter it.
    model_path = run_dir / "final_model.zip"
    print(f"trained in {time.perf_counter() - t0:.1f} s -> {model_path}")

    # 3. evaluate -------------------------------------------------------------------------------------------
    t0 = _step("3/3 evaluate every policy on the held-out traces (identical requests)")
    parser = argparse.ArgumentParser()
    evaluate.add_evaluate_arguments(parser)
    eval_argv = ["-o", str(outdir / "eval"), "--overwrite", "--seed", str(args.seed),
                 "--policies", f"{evaluate.DEFAULT_POLICIES},ppo={model_path}"]
    if args.reprofile:
        eval_argv += ["--profile", str(profile_path)]
    if args.max_eval_requests:
        eval_argv += ["--max-eval-requests", str(args.max_eval_requests)]
    evaluate.run_evaluate(parser.parse_args(eval_argv))
    results = plots.load_results(outdir / "eval")
    print(f"[{time.perf_counter() - t0:.1f} s]")

    switch = results.get("oracle_switch_fraction")
    gap = results.get("argmin_oracle_gap")
    print(f"\nThe oracle's choice changes on {100 * switch:.1f}% of consecutive requests; "
          f"argmin is {100 * gap:.2f}% above the oracle's mean latency." if switch is not None and gap is not None
          else "")
    ppo = results["policies"].get("ppo", {})
    if ppo.get("gap_closure") is not None:
        print(f"PPO closes {ppo['gap_closure']:.2f} of the argmin-oracle gap (1 = clairvoyant, 0 = the paper's "
              "selector, < 0 = worse).")
    print(f"\nResults: {outdir / 'eval'} (results.json, requests.csv, summary.md, *.png)")
    print(f"TensorBoard: tensorboard --logdir {outdir / 'tb'}   (then open http://localhost:6006)")
    print(f"Demo finished in {time.perf_counter() - start:.0f} s.")
    return 0
