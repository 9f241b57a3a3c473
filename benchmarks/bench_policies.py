"""PPO and DQN against every baseline on held-out traces, and a study of what the agent observes.

Agents are trained on one half of a trace family and tested on the other (``pensieve-train`` ->
``pensieve-test``, ``mahimahi-lte-up-train`` -> ``mahimahi-lte-up-test``), several seeds each, in the
demo's regime (the env defaults: bundled mobilenet_v3_large profile, int8, rate_scale 5, load
azure-vm-avg, batch load model). Every agent is tested with its ``final_model.zip`` (``best_model.zip``
is selected on the test traces). For each family the script prints one table -- policy, mean latency
[95% CI], ratios to ``argmin`` and ``oracle``, gap closure ``g = (argmin - agent) / (argmin - oracle)``
[95% CI] and per seed -- and writes ``benchmarks/results/policies.json`` atomically.

Reference: ``argmin`` is always the paper's selector at its 1 s observation bin (``history=8``,
``history_bin_s=1``). When the agents observe other bins, the selector reading the *same* observation is
listed as ``argmin[obs]``; both share the oracle and the requests (the simulation depends only on the
actions, so rows from differently observed envs are paired request by request).

Intervals: a paired block bootstrap over ``--block-s`` seconds of simulated time (default 20 s; the
Mahimahi test half has only 2 traces), seeds pooled, so the CI reflects the test conditions; the spread
over seeds is given by the per-seed ``g`` values. The Pensieve test half is 10 h of traces: every trace is
cut at ``--pensieve-requests`` requests (default 300).

``--study``: the observation / reward study on the Mahimahi family (history length and bin width, load
history, previous action and latency, the constant-rate estimates, a multi-scale history, reward and
discount), results in ``benchmarks/results/policies_study.json``. Variants that the env's keyword
arguments cannot express (masks, an extra coarse history) are prototyped here as a wrapper or subclass.

Run: ``.venv/bin/python benchmarks/bench_policies.py [--families mahimahi,pensieve] [--algos ppo,dqn]
[--seeds 3] [--timesteps 100000] [--env-kwarg KEY=VALUE] [--hyperparams KEY:VALUE] [--jobs 2]``;
``.venv/bin/python benchmarks/bench_policies.py --study [--variants a,b] [--algos ppo]``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_RUNS_DIR = Path(__file__).resolve().parent.parent / "runs" / "bench_policies"
BASELINES = ("argmin", "argmin-harmonic", "oracle", "static", "local", "offload", "random")
#: The paper's observation: what ``argmin`` (the reference of g) reads.
REFERENCE_OBS = {"history": 8, "history_bin_s": 1.0, "observe_estimates": True}
#: Env arguments that only change what the agent sees or is rewarded with, not the requests.
OBS_KEYS = ("history", "history_bin_s", "observe_estimates", "reward", "episode_requests")


@dataclass(frozen=True)
class Family:
    """A trace family: training half, test half, requests per test trace (``None``: whole traces)."""

    train: str
    test: str
    max_eval_requests: int | None


FAMILIES = {
    "mahimahi": Family("mahimahi-lte-up-train", "mahimahi-lte-up-test", None),
    "pensieve": Family("pensieve-train", "pensieve-test", 300),
    # diagnostic only (never a result): trained *and* tested on the test half, an in-sample upper bound
    "mahimahi-insample": Family("mahimahi-lte-up-test", "mahimahi-lte-up-test", None),
}
DEFAULT_FAMILIES = ("mahimahi", "pensieve")


@dataclass(frozen=True)
class Variant:
    """One agent configuration: env kwargs, hyperparameter overrides and an optional prototype.

    ``proto`` holds what the env cannot yet express: ``mask`` (observation parts zeroed for the agent,
    e.g. ``["loads"]``) and ``coarse`` (``[k, bin_s]``: an extra history of ``k`` rate bins of ``bin_s``).
    """

    name: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    hyperparams: Sequence[str] = ()
    proto: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


REGRET = {"reward": "regret"}
FINE = {"history": 16, "history_bin_s": 0.1}
STUDY_VARIANTS = [
    Variant("base", {}, note="env defaults: latency reward, 8 x 1 s bins, estimates on"),
    Variant("regret", REGRET, note="regret reward, 8 x 1 s"),
    Variant("regret-8x0.25", {**REGRET, "history": 8, "history_bin_s": 0.25}),
    Variant("regret-16x0.25", {**REGRET, "history": 16, "history_bin_s": 0.25}),
    Variant("regret-16x0.1", {**REGRET, **FINE}),
    Variant("regret-32x0.1", {**REGRET, "history": 32, "history_bin_s": 0.1}),
    Variant("latency-16x0.1", FINE, note="fine bins with the latency reward"),
    Variant("regret-16x0.1-noest", {**REGRET, **FINE, "observe_estimates": False}),
    Variant("regret-16x0.1-noload", {**REGRET, **FINE}, proto={"mask": ["loads"]}),
    Variant("regret-16x0.1-noprev", {**REGRET, **FINE}, proto={"mask": ["prev_action", "prev_latency"]}),
    Variant("regret-16x0.1+8x1", {**REGRET, **FINE}, proto={"coarse": [8, 1.0]},
            note="multi-scale: 16 x 0.1 s plus 8 x 1 s rate bins"),
    Variant("regret-16x0.1-gamma0", {**REGRET, **FINE}, hyperparams=("gamma:0.0",), note="pure bandit"),
]


# ----------------------------------------------------------------------------------------- prototypes
def _coarse_env_class():
    from gymnasium import spaces

    from dynsplit.envs.dynamic_split import DynamicSplitEnv

    class CoarseHistoryEnv(DynamicSplitEnv):
        """The env plus ``coarse_rates``: ``coarse_history`` rate bins of ``coarse_bin_s`` (same encoding)."""

        def __init__(self, *, coarse_history: int = 8, coarse_bin_s: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.coarse_history, self.coarse_bin_s = int(coarse_history), float(coarse_bin_s)
            n0 = int(self.observation_space.shape[0])
            k = self.coarse_history
            low = np.concatenate([self.observation_space.low, -np.ones(k, np.float32)])
            high = np.concatenate([self.observation_space.high, np.ones(k, np.float32)])
            self.observation_space = spaces.Box(low, high, dtype=np.float32)
            self.obs_layout["coarse_rates"] = slice(n0, n0 + k)

        def _observation(self) -> np.ndarray:
            obs = super()._observation()
            rates = self._channel.mean_rates_before(self._t, self.coarse_history, self.coarse_bin_s)
            coarse = np.clip(np.log10(np.maximum(rates, 1e-3)) - 6.0, -3.0, 3.0) / 3.0
            return np.concatenate([obs, coarse.astype(np.float32)])

    return CoarseHistoryEnv


def build_env(env_kwargs: Mapping[str, Any], proto: Mapping[str, Any] | None = None):
    """The env of ``env_kwargs``, with the prototype features of ``proto`` (see :class:`Variant`)."""
    import gymnasium as gym

    import dynsplit

    proto = dict(proto or {})
    if proto.get("coarse"):
        k, bin_s = proto["coarse"]
        env = _coarse_env_class()(coarse_history=k, coarse_bin_s=bin_s, **env_kwargs)
    else:
        env = gym.make(dynsplit.ENV_ID, **env_kwargs)
    mask = proto.get("mask") or []
    if mask:
        layout = env.unwrapped.obs_layout
        keep = np.ones(env.observation_space.shape[0], np.float32)
        for part in mask:
            keep[layout[part]] = 0.0

        class Mask(gym.ObservationWrapper):
            def observation(self, observation):
                return observation * keep

        env = Mask(env)
    return env


# ------------------------------------------------------------------------------------------ training
def _hyperparams(algo: str, timesteps: int, env_kwargs: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    from dynsplit.experiments.config import load_hyperparams

    hp = load_hyperparams(algo, None, list(overrides))
    hp["n_timesteps"] = int(timesteps)
    hp["env_kwargs"] = {**hp.get("env_kwargs", {}), **dict(env_kwargs)}
    return hp


def train_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Train one agent (in a worker process); returns its final model path and timing."""
    algo, seed, run_dir = job["algo"], int(job["seed"]), Path(job["run_dir"])
    hp = _hyperparams(algo, job["timesteps"], job["env_kwargs"], job["hyperparams"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    if not job.get("proto"):
        from dynsplit.experiments.train import train

        train(algo, hp, seed=seed, run_dir=run_dir, eval_freq=0, eval_requests=job["train_eval_requests"],
              save_freq=0, progress=False, verbose=0, num_threads=1)
    else:  # a prototype env that dynsplit train cannot build: the same agent, a minimal loop
        import torch as th
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        from dynsplit.agents.factory import make_agent, save_atomic

        th.set_num_threads(1)
        kwargs = {**hp["env_kwargs"], "mode": "train"}
        vec = DummyVecEnv([lambda: Monitor(build_env(kwargs, job["proto"]))] * int(hp.get("n_envs", 1)))
        vec.seed(seed)
        model = make_agent(algo, vec, hp, seed=seed)
        model.learn(hp["n_timesteps"])
        run_dir.mkdir(parents=True, exist_ok=True)
        save_atomic(model, run_dir / "final_model.zip")
        vec.close()
    wall = time.perf_counter() - started
    return {**{k: v for k, v in job.items() if k != "env_kwargs"}, "model": str(run_dir / "final_model.zip"),
            "wall_s": wall, "steps_per_s": job["timesteps"] / wall}


# ---------------------------------------------------------------------------------------- evaluation
def _rename(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [{**r, "policy": name} for r in rows]


def eval_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate baselines and agents of one (family, variant) on the test half (in a worker process)."""
    from dynsplit.agents.baselines import AgentPolicy
    from dynsplit.agents.evaluation import rollout, summarize
    from dynsplit.agents.factory import load_agent
    from dynsplit.experiments.evaluate import evaluate_policies

    family = Family(*job["family_spec"]) if "family_spec" in job else FAMILIES[job["family"]]
    variant_kwargs = dict(job["env_kwargs"])
    common = {k: v for k, v in variant_kwargs.items() if k not in OBS_KEYS}
    test = {"channel": family.test, "max_eval_requests": family.max_eval_requests}
    train_kwargs = {**common, **REFERENCE_OBS, "channel": family.train,
                    "max_eval_requests": family.max_eval_requests or 2000}
    started = time.perf_counter()
    rows, ref = evaluate_policies({**common, **REFERENCE_OBS, **test}, list(job["baselines"]),
                                  train_env_kwargs=train_kwargs, block_s=job["block_s"])
    action_names = ref["action_names"]
    obs_kwargs = {k: variant_kwargs[k] for k in ("history", "history_bin_s") if k in variant_kwargs}
    if any(variant_kwargs.get(k, REFERENCE_OBS[k]) != REFERENCE_OBS[k] for k in ("history", "history_bin_s")):
        obs_rows, _ = evaluate_policies({**common, **obs_kwargs, **test}, ["argmin"], block_s=job["block_s"])
        rows += _rename(obs_rows, "argmin[obs]")
    for name, (algo, paths) in job["agents"].items():
        if not job.get("proto"):
            agent_rows, _ = evaluate_policies({**variant_kwargs, **test},
                                              [f"{algo}[x]={p}" for p in paths], block_s=job["block_s"])
            rows += _rename(agent_rows, name)
        else:
            for i, path in enumerate(paths):
                env = build_env({**variant_kwargs, **test, "mode": "eval"}, job["proto"])
                policy = AgentPolicy(load_agent(algo, path, None), name, seed=i, path=path)
                rows += rollout(env, policy)
                env.close()
    summary = summarize(rows, action_names, block_s=job["block_s"])
    a = summary["policies"]["argmin"]["mean_latency_s"]
    o = summary["policies"]["oracle"]["mean_latency_s"]
    for stats in summary["policies"].values():
        per_seed = stats["per_seed"]
        stats["gap_closure_per_seed"] = {s: (a - m) / (a - o) if a != o else None for s, m in per_seed.items()}
        stats["seeds"] = len(per_seed)
    summary.update(family=job["family"], variant=job["variant"], test_channel=family.test,
                   train_channel=family.train, max_eval_requests=family.max_eval_requests,
                   env_kwargs=variant_kwargs, proto=dict(job.get("proto") or {}),
                   eval_wall_s=time.perf_counter() - started)
    return summary


# --------------------------------------------------------------------------- full-information ceiling
def supervised_ceiling_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """How far the *observation* can take a learner that sees every action's latency (full information).

    Walks the training half with ``argmin`` plus 30% random actions, recording the observation and the
    exact latency of every action (``env.exact_latencies()``, privileged), fits the agents' MLP (64x64
    tanh) to minimise the expected regret ``sum_a softmax(logits)_a (T_a - T_min) / T_ref``, and plays its
    argmax in closed loop on the test half. PPO and DQN learn the same map from bandit feedback (one
    action's latency per request), so this is an estimate of what they could reach with this observation.
    """
    import torch as th

    from dynsplit.agents.baselines import ArgminPolicy, Policy
    from dynsplit.agents.evaluation import rollout

    th.set_num_threads(1)
    th.manual_seed(int(job["seed"]))
    rng = np.random.default_rng(int(job["seed"]))
    env = build_env({**job["env_kwargs"], "mode": "train"}, job.get("proto"))
    base = env.unwrapped
    argmin = ArgminPolicy(env)
    obs_list, lat_list = [], []
    obs, _ = env.reset(seed=int(job["seed"]))
    for _ in range(int(job["samples"])):
        lat = base.exact_latencies()
        obs_list.append(obs)
        lat_list.append(lat)
        action = int(rng.integers(base.n_actions)) if rng.random() < 0.3 else int(argmin.predict(obs)[0])
        obs, _, term, trunc, _ = env.step(action)
        if term or trunc:
            obs, _ = env.reset()
    x = th.tensor(np.array(obs_list), dtype=th.float32)
    lat = np.array(lat_list)
    cost = th.tensor((lat - lat.min(axis=1, keepdims=True)) / base.t_ref_s, dtype=th.float32)
    net = th.nn.Sequential(th.nn.Linear(x.shape[1], 64), th.nn.Tanh(), th.nn.Linear(64, 64), th.nn.Tanh(),
                           th.nn.Linear(64, base.n_actions))
    opt = th.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(int(job["epochs"])):
        perm = th.randperm(x.shape[0])
        for i in range(0, x.shape[0], 256):
            idx = perm[i:i + 256]
            loss = (th.softmax(net(x[idx]), dim=1) * cost[idx]).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    env.close()

    class Net(Policy):
        name = job["name"]

        def _act(self, o: np.ndarray) -> np.ndarray:
            with th.no_grad():
                return net(th.as_tensor(o, dtype=th.float32)).argmax(dim=1).numpy()

    family = Family(*job["family_spec"])
    test_env = build_env({**job["env_kwargs"], "channel": family.test, "mode": "eval",
                          "max_eval_requests": family.max_eval_requests}, job.get("proto"))
    policy = Net()
    policy.seed = int(job["seed"])
    rows = rollout(test_env, policy)
    test_env.close()
    return {"rows": rows, "train_loss": float(loss.detach())}


def ceiling(variants: Sequence[Variant], family: str, seeds: Sequence[int], samples: int, epochs: int,
            jobs: int, block_s: float, log) -> list[dict[str, Any]]:
    """The full-information learner of :func:`supervised_ceiling_job` per variant, next to argmin/oracle."""
    from dynsplit.agents.evaluation import summarize
    from dynsplit.experiments.evaluate import evaluate_policies

    fam = FAMILIES[family]
    test = {"channel": fam.test, "max_eval_requests": fam.max_eval_requests}
    ref_rows, ref = evaluate_policies({**REFERENCE_OBS, **test}, ["argmin", "oracle"], block_s=block_s)
    jobs_list = [{"name": f"supervised[{v.name}]", "variant": v.name, "family": family, "seed": s,
                  "family_spec": [fam.train, fam.test, fam.max_eval_requests],
                  "samples": samples, "epochs": epochs, "proto": dict(v.proto),
                  "env_kwargs": {**dict(v.env_kwargs), "channel": fam.train}} for v in variants for s in seeds]
    rows = list(ref_rows)
    with _pool(jobs) as pool:
        for job, res in zip(jobs_list, pool.map(supervised_ceiling_job, jobs_list), strict=True):
            rows += res["rows"]
            log(f"ceiling {job['name']} seed {job['seed']}: train loss {res['train_loss']:.4f}")
    summary = summarize(rows, ref["action_names"], block_s=block_s)
    a = summary["policies"]["argmin"]["mean_latency_s"]
    o = summary["policies"]["oracle"]["mean_latency_s"]
    for stats in summary["policies"].values():
        stats["gap_closure_per_seed"] = {s: (a - m) / (a - o) for s, m in stats["per_seed"].items()}
        stats["seeds"] = len(stats["per_seed"])
    summary.update(family=family, variant="full-information ceiling", test_channel=fam.test,
                   train_channel=fam.train, max_eval_requests=fam.max_eval_requests, samples=samples,
                   epochs=epochs)
    return [summary]


# ------------------------------------------------------------------------------------------- output
def format_table(summary: Mapping[str, Any]) -> str:
    """One markdown table of a family/variant summary."""
    def ms(x):
        return "-" if x is None else f"{1e3 * x:.2f}"

    def num(x, fmt="{:.3f}"):
        return "-" if x is None else fmt.format(x)

    lines = [f"### {summary['family']} / {summary['variant']}: test `{summary['test_channel']}` "
             f"(train `{summary['train_channel']}`), argmin-oracle gap "
             f"{100 * summary['argmin_oracle_gap']:.2f}%, oracle switches at "
             f"{100 * summary['oracle_switch_fraction']:.1f}% of requests",
             "", "| policy | mean ms [95% CI] | / argmin | / oracle | g [95% CI] | g per seed | seeds |",
             "|---|---|---|---|---|---|---|"]
    for name, s in summary["policies"].items():
        ci = s.get("mean_latency_ci95")
        mean = ms(s["mean_latency_s"]) + (f" [{ms(ci[0])}, {ms(ci[1])}]" if ci else "")
        g = num(s.get("gap_closure"), "{:.2f}")
        gci = s.get("gap_closure_ci95")
        if gci:
            g += f" [{gci[0]:.2f}, {gci[1]:.2f}]"
        per = s.get("gap_closure_per_seed") or {}
        per_txt = ", ".join(num(v, "{:.2f}") for v in per.values()) if len(per) > 1 else ""
        lines.append(f"| {name} | {mean} | {num(s.get('ratio_to_argmin'))} | {num(s.get('ratio_to_oracle'))} "
                     f"| {g} | {per_txt} | {s['seeds']} |")
    bs = summary["bootstrap"]
    lines += ["", f"95% CIs: {bs['resamples']} paired bootstrap resamples of {bs['units']} "
                  f"{bs['block_s']:g} s blocks (seeds pooled); requests per test trace: "
                  f"{summary['max_eval_requests'] or 'whole trace'}."]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _parse_env_kwargs(items: Sequence[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--env-kwarg '{item}' is not KEY=VALUE")
        out[key.strip()] = yaml.safe_load(text)
    return out


def _pool(jobs: int):
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def run(variants: Sequence[Variant], families: Sequence[str], algos: Sequence[str], seeds: Sequence[int],
        timesteps: int, jobs: int, runs_dir: Path, block_s: float, log) -> dict[str, Any]:
    """Train every (family, variant, algo, seed), then evaluate every (family, variant)."""
    train_jobs = []
    for fam in families:
        for v in variants:
            for algo in algos:
                for seed in seeds:
                    train_jobs.append({
                        "family": fam, "variant": v.name, "algo": algo, "seed": seed, "timesteps": timesteps,
                        "env_kwargs": {**dict(v.env_kwargs), "channel": FAMILIES[fam].train},
                        "hyperparams": list(v.hyperparams), "proto": dict(v.proto),
                        "train_eval_requests": 20,
                        "run_dir": str(runs_dir / fam / v.name / f"{algo}_{seed}")})
    started = time.perf_counter()
    trained = []
    with _pool(jobs) as pool:
        for res in pool.map(train_job, train_jobs):
            trained.append(res)
            log(f"trained {res['family']}/{res['variant']}/{res['algo']} seed {res['seed']}: "
                f"{res['wall_s']:.0f} s ({res['steps_per_s']:.0f} steps/s)")
    train_wall = time.perf_counter() - started
    eval_jobs = []
    for fam in families:
        for v in variants:
            agents = {}
            for algo in algos:
                paths = [t["model"] for t in trained if (t["family"], t["variant"], t["algo"]) == (fam, v.name, algo)]
                agents[algo] = (algo, paths)
            spec = FAMILIES[fam]
            eval_jobs.append({"family": fam, "family_spec": [spec.train, spec.test, spec.max_eval_requests],
                              "variant": v.name, "env_kwargs": dict(v.env_kwargs),
                              "proto": dict(v.proto), "agents": agents, "block_s": block_s,
                              # baselines are the same for every variant: full list once, the rest a minimum
                              "baselines": BASELINES if v is variants[0] else ("argmin", "oracle")})
    summaries = []
    with _pool(jobs) as pool:
        for summary in pool.map(eval_job, eval_jobs):
            summaries.append(summary)
            log("\n" + format_table(summary) + "\n")
    return {"train": trained, "results": summaries, "train_wall_s": train_wall,
            "eval_wall_s": time.perf_counter() - started - train_wall}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=None, help="comma list of " + ", ".join(FAMILIES)
                        + " (default: mahimahi,pensieve; --study: mahimahi; mahimahi-insample trains on "
                        "the test half: an in-sample diagnostic)")
    parser.add_argument("--algos", default=None, help="comma list of ppo, dqn (default both; --study: ppo)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per agent (0 .. N-1; default 3)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="env steps per agent (default 100000)")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="env argument for the agents (YAML value), repeatable")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
                        help="hyperparameter overrides for every algorithm (dotted keys as in dynsplit train)")
    parser.add_argument("--with-recommended", action="store_true",
                        help="also train and test variant regret-16x0.1 explicitly (the yml defaults since this study)")
    parser.add_argument("--study", action="store_true", help="run the observation / reward study instead")
    parser.add_argument("--ceiling", action="store_true",
                        help="with --study: only the full-information ceiling of each variant, added to the "
                             "study JSON under 'ceiling'")
    parser.add_argument("--ceiling-samples", type=int, default=100_000, help="training requests of the ceiling")
    parser.add_argument("--variants", default=None, help="--study: comma list of variant names (default all)")
    parser.add_argument("--pensieve-requests", type=int, default=FAMILIES["pensieve"].max_eval_requests,
                        help="requests per Pensieve test trace (default 300)")
    parser.add_argument("--block-s", type=float, default=20.0, help="bootstrap block in simulated seconds")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where the models go")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default benchmarks/results/policies.json or policies_study.json)")
    args = parser.parse_args(argv)

    FAMILIES["pensieve"] = Family(FAMILIES["pensieve"].train, FAMILIES["pensieve"].test, args.pensieve_requests)
    extra_env = _parse_env_kwargs(args.env_kwarg)
    if args.study:
        names = args.variants.split(",") if args.variants else [v.name for v in STUDY_VARIANTS]
        known = {v.name: v for v in STUDY_VARIANTS}
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(known)}")
        variants = [Variant(v.name, {**dict(v.env_kwargs), **extra_env}, [*v.hyperparams, *args.hyperparams],
                            v.proto, v.note) for v in (known[n] for n in names)]
        families = (args.families or "mahimahi").split(",")
        algos = (args.algos or "ppo").split(",")
        out = args.out or RESULTS_DIR / "policies_study.json"
    else:
        variants = [Variant("default", extra_env, list(args.hyperparams), note="configs/*.yml as shipped")]
        if args.with_recommended:
            variants.append(Variant("regret-16x0.1", {**REGRET, **FINE, **extra_env}, list(args.hyperparams),
                                    note="reward regret, 16 x 0.1 s rate bins"))
        families = (args.families or ",".join(DEFAULT_FAMILIES)).split(",")
        algos = (args.algos or "ppo,dqn").split(",")
        out = args.out or RESULTS_DIR / "policies.json"
    for fam in families:
        if fam not in FAMILIES:
            parser.error(f"unknown family '{fam}'; known: {', '.join(FAMILIES)}")
    for algo in algos:
        if algo not in ("ppo", "dqn"):
            parser.error(f"unknown algo '{algo}'; expected ppo or dqn")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    from dynsplit.splitting.profile import write_json_atomic

    seeds = list(range(args.seeds))
    started = time.perf_counter()
    if args.ceiling:
        if not args.study:
            parser.error("--ceiling needs --study")
        summaries = ceiling(variants, families[0], seeds, args.ceiling_samples, 20, args.jobs, args.block_s, log)
        tables = format_table(summaries[0])
        print(tables)
        data = json.loads(out.read_text()) if out.exists() else {}
        data["ceiling" if families[0] == "mahimahi" else f"ceiling[{families[0]}]"] = {"command": " ".join(sys.argv), "samples": args.ceiling_samples, "epochs": 20,
                           "seeds": seeds, "variants": [v.name for v in variants], "results": summaries,
                           "wall_s": time.perf_counter() - started, "tables_md": tables}
        write_json_atomic(out, _jsonable(json.loads(json.dumps(data, default=str))))
        log(f"wrote {out}")
        return 0
    result = run(variants, families, algos, seeds, args.timesteps, args.jobs, args.runs_dir, args.block_s, log)
    tables = "\n\n".join(format_table(s) for s in result["results"])
    print(tables)
    data = {
        "benchmark": "bench_policies" + (" --study" if args.study else ""),
        "command": " ".join(sys.argv),
        "families": {f: vars(FAMILIES[f]) for f in families},
        "algos": algos, "seeds": seeds, "timesteps": args.timesteps, "block_s": args.block_s,
        "reference_obs": REFERENCE_OBS, "jobs": args.jobs,
        "variants": [{"name": v.name, "env_kwargs": dict(v.env_kwargs), "hyperparams": list(v.hyperparams),
                      "proto": dict(v.proto), "note": v.note} for v in variants],
        "wall_s": time.perf_counter() - started,
        **result,
        "tables_md": tables,
    }
    write_json_atomic(out, _jsonable(json.loads(json.dumps(data, default=str))))
    log(f"wrote {out} ({data['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
