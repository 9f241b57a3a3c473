"""``dynsplit evaluate``: every policy on the same requests, with results, a table and figures.

:func:`evaluate_policies` is the reusable core (the demo and the benchmarks call it without argparse):
every policy run gets a *fresh* eval env built from identical kwargs, so all of them see identical
request conditions (each channel trace walked from its start). :func:`add_evaluate_arguments` and
:func:`run_evaluate` are the command line; the run folder receives

* ``results.json`` -- model, profile, codec, channel, load, env kwargs, seeds, episodes, action names,
  dataset-level numbers and the per-policy summary of :func:`dynsplit.agents.evaluation.summarize`;
* ``requests.csv`` -- every request of every policy (columns :data:`~dynsplit.agents.evaluation.ROW_FIELDS`);
* ``summary.md`` -- the table that is also printed;
* figures, when :mod:`dynsplit.experiments.plots` exists.

Policy list (``--policies``, comma-separated, the option may be repeated): baseline names
(:data:`~dynsplit.agents.baselines.BASELINE_NAMES`) and agents as ``ppo=PATH`` or ``dqn=PATH``. Several
trained seeds of one agent are given either as repeated entries (``ppo=run0/model.zip,ppo=run1/model.zip``)
or in one entry separated by ``;`` (``'ppo=run0/model.zip;run1/model.zip'`` -- quote it in a shell); their
results are pooled under ``ppo`` and the rows' ``seed`` column is the model's position (0, 1, ...).
``ALGO[LABEL]=PATH`` names a variant ``ALGO[LABEL]`` so that two agents of one algorithm can be compared.
``--seed`` seeds ``random`` (and each env's first reset).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from dynsplit.agents.baselines import (
    BASELINE_NAMES,
    BASELINE_OBSERVATION,
    PolicySpec,
    StaticPolicy,
    make_policy,
    parse_policy_specs,
)
from dynsplit.agents.evaluation import ROW_FIELDS, finite_or_none, rollout, summarize
from dynsplit.envs import ENV_ID
from dynsplit.envs.dynamic_split import (
    DEFAULT_EVAL_CHANNEL,
    DEFAULT_LOAD,
    DEFAULT_TRAIN_CHANNEL,
    DynamicSplitEnv,
)
from dynsplit.envs.profiles import DEFAULT_MODEL, bundled_profiles_dir
from dynsplit.splitting.atomic_files import atomic_output, write_json_atomic
from dynsplit.splitting.errors import DynsplitError, did_you_mean
from dynsplit.splitting.profile import Profile

DEFAULT_POLICIES = ",".join(BASELINE_NAMES)
#: ``--env-kwarg`` keys set by ``evaluate`` itself.
_RESERVED_KWARGS = ("mode", "render_mode")
#: Flag -> env kwarg, for the env options that have their own flag.
_ENV_FLAGS = {"profile": "profile", "model": "model", "channel": "channel", "load": "load", "codec": "codec",
              "rate_scale": "rate_scale", "history": "history", "history_bin_s": "history_bin_s",
              "load_model": "load_model", "max_eval_requests": "max_eval_requests"}


# ------------------------------------------------------------------------------------------------ core
def evaluate_policies(env_kwargs: Mapping[str, Any], policy_specs: Sequence[str], *,
                      train_env_kwargs: Mapping[str, Any] | None = None, seeds: Sequence[int] = (0,),
                      progress: bool = False, episodes: int | None = None,
                      block_s: float | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every policy on fresh, identical eval envs; return the request rows and their summary.

    Args:
        env_kwargs: ``gymnasium.make`` kwargs of the evaluation env (``mode`` is forced to ``"eval"``).
        policy_specs: entries as described in the module docstring (``argmin``, ``ppo=PATH``, ...).
        train_env_kwargs: training conditions for ``static`` (default: ``env_kwargs`` without ``channel``
            and ``max_eval_requests``, i.e. the env's default training channel).
        seeds: ``random`` runs once per seed; the other baselines once, with ``seeds[0]``; agents once
            per model file, labelled 0, 1, ...
        progress: tqdm bars over requests.
        episodes: episodes per run (default one per channel trace).
        block_s: bootstrap over blocks of this many simulated seconds instead of whole episodes.

    Returns:
        ``(rows, summary)``: rows as from :func:`~dynsplit.agents.evaluation.rollout`; the summary of
        :func:`~dynsplit.agents.evaluation.summarize` plus ``model``, ``action_names``, ``traces``,
        ``load_traces``, ``episodes``, ``seeds`` and ``policy_info`` ({name: extra facts, e.g. the action
        ``static`` chose and its training means, or an agent's model files}).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DynsplitError("seeds is empty (expected at least one seed, e.g. 0)")
    specs = parse_policy_specs(policy_specs)
    eval_kwargs = {**dict(env_kwargs), "mode": "eval"}
    if train_env_kwargs is None:
        train_env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("channel", "max_eval_requests", "mode")}

    def fresh_env(observation: Mapping[str, Any] | None = None) -> gym.Env:
        # An agent sees what it was trained to see (history, bin width, estimates); these arguments shape
        # only the observation, so its requests and latencies stay identical to every other policy's.
        return gym.make(ENV_ID, **{**eval_kwargs, **(observation or {})})

    probe = fresh_env().unwrapped  # fails fast on bad env kwargs, before any policy runs
    action_names = list(probe.action_names)
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    static: StaticPolicy | None = None
    for spec in specs:
        if spec.algo is not None:
            runs = [(PolicySpec(spec.name, spec.algo, (path,)), i) for i, path in enumerate(spec.paths)]
            info[spec.name] = {"algo": spec.algo, "paths": list(spec.paths)}
        elif spec.name == "random":
            runs = [(spec, s) for s in seeds]
        else:
            runs = [(spec, seeds[0])]
        for run_spec, seed in runs:
            observation = BASELINE_OBSERVATION.get(spec.name)
            if spec.algo is not None:
                from dynsplit.agents.factory import observation_kwargs_of  # imports stable-baselines3

                observation = observation_kwargs_of(run_spec.paths[0])
            env = fresh_env(observation)
            if spec.name == "static" and static is None:
                static = StaticPolicy(train_env_kwargs)
            policy = make_policy(run_spec, env, train_env_kwargs=train_env_kwargs, seed=seed, static=static)
            if spec.algo is None and policy.info:
                info[spec.name] = policy.info
            rows += rollout(env, policy, episodes=episodes, seed=seed, progress=progress)
            env.close()
    summary = summarize(rows, action_names, block_s=block_s)
    summary.update(
        model=probe.profile.model,
        action_names=action_names,
        traces=[c.name for c in probe.channels],
        load_traces=[t.name for t in probe.loads],
        episodes=episodes if episodes is not None else len(probe.channels),
        seeds=seeds,
        policy_info=info,
    )
    return rows, summary


# ---------------------------------------------------------------------------------------------- output
def format_summary_table(summary: Mapping[str, Any], top: int = 3) -> str:
    """Markdown table of a summary: policy, mean ms [95% CI], p50/p95/p99 ms, regret ms, gap closure,
    ratios to argmin and oracle, and the ``top`` most chosen actions (share of requests)."""

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{1e3 * x:.1f}"

    def num(x: float | None, fmt: str = "{:.3f}") -> str:
        return "-" if x is None else fmt.format(x)

    lines = ["| policy | mean ms [95% CI] | p50 ms | p95 ms | p99 ms | regret ms | gap closure [95% CI] "
             "| / argmin | / oracle | top actions |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary["policies"].items():
        ci = s.get("mean_latency_ci95")
        mean = ms(s["mean_latency_s"]) + (f" [{ms(ci[0])}, {ms(ci[1])}]" if ci else "")
        gap = num(s.get("gap_closure"), "{:.2f}")
        gci = s.get("gap_closure_ci95")
        if gci and s.get("gap_closure") is not None:
            gap += f" [{gci[0]:.2f}, {gci[1]:.2f}]"
        counts = sorted(s["action_counts"].items(), key=lambda kv: -kv[1])
        total = max(1, s["requests"])
        actions = ", ".join(f"{a} {100 * c / total:.0f}%" for a, c in counts[:top] if c)
        lines.append(f"| {name} | {mean} | {ms(s['p50_latency_s'])} | {ms(s['p95_latency_s'])} | "
                     f"{ms(s['p99_latency_s'])} | {ms(s['mean_regret_s'])} | {gap} | "
                     f"{num(s.get('ratio_to_argmin'))} | {num(s.get('ratio_to_oracle'))} | {actions} |")
    return "\n".join(lines)


def format_summary_markdown(results: Mapping[str, Any]) -> str:
    """The whole ``summary.md``: a header naming the conditions, the table and the dataset-level numbers."""
    boot = results["bootstrap"]
    unit = "episodes (traces)" if boot["unit"] == "episode" else f"{boot['block_s']:g} s blocks"
    gap = results.get("argmin_oracle_gap")
    switch = results.get("oracle_switch_fraction")
    return "\n".join([
        f"# dynsplit evaluate: {results['model']}",
        "",
        f"channel `{results['channel']}` ({', '.join(results['traces'])}), load `{results['load']}`, "
        f"codec `{results['codec']}`, {results['episodes']} episode(s) per run, seeds {results['seeds']}.",
        "",
        format_summary_table(results),
        "",
        f"argmin-oracle gap: {'-' if gap is None else f'{100 * gap:.2f}%'}; oracle switches action at "
        f"{'-' if switch is None else f'{100 * switch:.1f}%'} of requests. 95% CIs: {boot['resamples']} "
        f"bootstrap resamples of {boot['units']} {unit}, paired across policies.",
        "",
    ])


def write_results(outdir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
                  results: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``results.json``, ``requests.csv`` and ``summary.md`` into ``outdir``, each atomically."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "requests": out / "requests.csv", "summary": out / "summary.md"}

    def write_csv(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    with atomic_output(paths["requests"], newline="") as handle:
        write_csv(handle)
    with atomic_output(paths["summary"]) as handle:
        handle.write(format_summary_markdown(results))
    write_json_atomic(paths["results"], _jsonable(results))  # last: its presence marks a complete run
    return paths


def _jsonable(value: Any) -> Any:
    """Plain JSON types: NaN/inf -> None, numpy scalars -> Python, traces/profiles -> their names."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Profile):
        return f"<profile of {value.model}>"
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    return getattr(value, "name", None) or repr(value)


# ------------------------------------------------------------------------------------------ command line
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dynsplit evaluate`` to ``parser``."""
    parser.add_argument("--policies", action="append", default=None, metavar="LIST",
                        help="comma-separated policies: baselines (" + ", ".join(BASELINE_NAMES) + ") and "
                             "agents as ppo=PATH / dqn=PATH; several seeds of one agent as repeated entries "
                             "or 'ppo=PATH1;PATH2'; repeatable (default: all baselines)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in OUTDIR")
    env = parser.add_argument_group("environment")
    env.add_argument("--profile", default=None, help="profile JSON (default: the bundled profile of --model)")
    env.add_argument("--model", default=None, help=f"model of the bundled profile (default {DEFAULT_MODEL})")
    env.add_argument("--channel", default=None,
                     help=f"evaluation channel: bundled name, file or folder (default {DEFAULT_EVAL_CHANNEL})")
    env.add_argument("--train-channel", default=None,
                     help=f"training channel, for 'static' (default {DEFAULT_TRAIN_CHANNEL})")
    env.add_argument("--load", default=None,
                     help=f"server load: bundled name, CSV file or a constant in [0, 1] (default {DEFAULT_LOAD})")
    env.add_argument("--codec", default=None, help="codec on the wire (default int8)")
    env.add_argument("--rate-scale", type=float, default=None, help="multiply every channel rate (default 5)")
    env.add_argument("--history", type=int, default=None, help="rate/load bins observed (default 8)")
    env.add_argument("--history-bin-s", type=float, default=None, help="length of one bin in seconds (default 1)")
    env.add_argument("--load-model", default=None, help="batch or sharing (default batch)")
    env.add_argument("--max-eval-requests", type=int, default=None,
                     help="cap on requests per episode (default: walk each trace once)")
    env.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                     help="any other env argument, VALUE parsed as YAML (e.g. rtt_s=0.02); repeatable")
    run = parser.add_argument_group("run")
    run.add_argument("--episodes", type=int, default=None,
                     help="episodes per policy (default: one per trace); episode i walks trace i mod N with load "
                          "trace i mod M, so more episodes than traces repeat traces")
    run.add_argument("--seed", type=int, default=0, help="seed of 'random' and of the envs (default 0)")
    run.add_argument("--ci-block-s", type=float, default=None,
                     help="bootstrap over blocks of this many simulated seconds instead of whole traces")
    run.add_argument("--progress", action="store_true", help="show progress bars")


def parse_env_kwarg(text: str) -> tuple[str, Any]:
    """Parse one ``KEY=VALUE`` (YAML value), checking ``KEY`` against the env's arguments."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise DynsplitError(f"--env-kwarg '{text}' is not KEY=VALUE (e.g. rtt_s=0.02)")
    known = [p for p in inspect.signature(DynamicSplitEnv.__init__).parameters if p != "self"]
    if key not in known:
        raise DynsplitError(f"--env-kwarg: unknown env argument '{key}'{did_you_mean(key, known)}; expected one "
                            f"of {', '.join(known)}")
    if key in _RESERVED_KWARGS:
        raise DynsplitError(f"--env-kwarg: '{key}' is set by evaluate itself (the evaluation env is in eval mode)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise DynsplitError(f"--env-kwarg {key}: value '{raw}' is not valid YAML ({exc.__class__.__name__})") from None
    return key, value


def env_kwargs_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(eval env kwargs, training env kwargs for static)`` from parsed arguments; only options given
    are passed, so the env's defaults stay the defaults."""
    kwargs: dict[str, Any] = {}
    for text in args.env_kwarg:
        key, value = parse_env_kwarg(text)
        if key in kwargs:
            raise DynsplitError(f"--env-kwarg: '{key}' is given twice")
        kwargs[key] = value
    for attr, key in _ENV_FLAGS.items():
        value = getattr(args, attr)
        if value is None:
            continue
        if key == "load":
            value = _number_or_text(value)
        if key in kwargs:
            raise DynsplitError(f"env argument '{key}' is given both as --{attr.replace('_', '-')} and --env-kwarg")
        kwargs[key] = value
    train = {k: v for k, v in kwargs.items() if k not in ("channel", "max_eval_requests")}
    if args.train_channel is not None:
        train["channel"] = args.train_channel
    return kwargs, train


def _number_or_text(text: str) -> float | str:
    """``float(text)`` when ``text`` is a number (a constant load), else ``text`` (a name or a file)."""
    try:
        return float(text)
    except ValueError:
        return text


def _profile_source(kwargs: Mapping[str, Any], model: str) -> str:
    profile = kwargs.get("profile")
    if profile is None:
        return str(bundled_profiles_dir() / f"{model}.json")
    return _jsonable(profile)


def run_evaluate(args: argparse.Namespace) -> int:
    """``dynsplit evaluate``: evaluate, write OUTDIR/results.json, requests.csv, summary.md, print the
    table and draw the figures (when :mod:`dynsplit.experiments.plots` exists). Returns the exit status."""
    outdir = Path(args.output)
    if (outdir / "results.json").exists() and not args.overwrite:
        raise DynsplitError(f"{outdir} already holds results.json (pass --overwrite to replace it)")
    if outdir.exists() and not outdir.is_dir():
        raise DynsplitError(f"output {outdir} exists and is not a folder")
    env_kwargs, train_kwargs = env_kwargs_from_args(args)
    specs = [entry for text in (args.policies or [DEFAULT_POLICIES]) for entry in text.split(",") if entry.strip()]
    rows, summary = evaluate_policies(env_kwargs, specs, train_env_kwargs=train_kwargs, seeds=[args.seed],
                                      progress=args.progress, episodes=args.episodes, block_s=args.ci_block_s)
    results = {
        "model": summary["model"],
        "profile": _profile_source(env_kwargs, summary["model"]),
        "codec": env_kwargs.get("codec", "int8"),
        "channel": env_kwargs.get("channel", DEFAULT_EVAL_CHANNEL),
        "train_channel": train_kwargs.get("channel", DEFAULT_TRAIN_CHANNEL),
        "traces": summary["traces"],
        "load": env_kwargs.get("load", DEFAULT_LOAD),
        "load_traces": summary["load_traces"],
        "env_kwargs": env_kwargs,
        "policy_specs": specs,
        "seeds": summary["seeds"],
        "episodes": summary["episodes"],
        "action_names": summary["action_names"],
        "oracle_switch_fraction": summary["oracle_switch_fraction"],
        "argmin_oracle_gap": summary["argmin_oracle_gap"],
        "bootstrap": summary["bootstrap"],
        "policy_info": summary["policy_info"],
        "policies": summary["policies"],
    }
    write_results(outdir, rows, results)
    print(format_summary_markdown(results))
    if importlib.util.find_spec("dynsplit.experiments.plots") is not None:
        plots = importlib.import_module("dynsplit.experiments.plots")
        for path in plots.plot_results(outdir, log=lambda msg: print(f"plot: {msg}", file=sys.stderr)):
            print(f"wrote {path}", file=sys.stderr)
    return 0
