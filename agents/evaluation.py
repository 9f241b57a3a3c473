"""Roll policies through evaluation episodes and summarise them with bootstrap confidence intervals.

:func:`rollout` plays one policy through an eval-mode env (every trace walked from its start, so every
policy sees the same conditions) and returns one row per request; :func:`summarize` turns the rows of
several policies into the numbers of DESIGN §2.2: mean and tail latency, regret against the oracle, and
the gap closure ``g = (argmin - policy) / (argmin - oracle)`` of mean latency (DESIGN §1.4).

Confidence intervals resample whole *units* -- episodes (i.e. traces) by default -- never single
requests: requests within a trace are strongly correlated (the channel changes slowly compared to a
request), so a request-level bootstrap would give intervals far too narrow. With few traces the interval
is correspondingly wide (with two traces it is about the span of the two per-trace means); a
non-overlapping block bootstrap over ``block_s`` seconds of simulated time is available for that case,
at the price of assuming blocks that long are nearly independent. The same resampled units are used for
every policy (a paired bootstrap), which is what makes the gap-closure interval meaningful.
Units: seconds throughout (milliseconds only in printed tables).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from dynsplit.splitting.errors import DynsplitError

#: Columns of one request row, in CSV order.
ROW_FIELDS = ("policy", "seed", "episode", "trace", "step", "sim_time_s", "action", "action_name", "latency_s",
              "device_s", "transfer_s", "server_s", "bytes", "failed", "rate_bps_at_decision", "load",
              "oracle_action", "oracle_latency_s", "regret_s")
_INFO_FIELDS = ("sim_time_s", "action_name", "latency_s", "device_s", "transfer_s", "server_s", "bytes", "failed",
                "rate_bps_at_decision", "load", "oracle_action", "oracle_latency_s", "regret_s")
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


def rollout(env: gym.Env, policy: Any, *, episodes: int | None = None, deterministic: bool = True,
            seed: int | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Play ``policy`` through ``episodes`` evaluation episodes of ``env`` and return one row per request.

    Episode ``i`` walks channel trace ``i mod N`` and load trace ``i mod M`` from their starts (it resets
    with ``options={"trace_index": ...}``, so the env's own episode counter does not matter); the default
    is one episode per channel trace. Rows have the keys of :data:`ROW_FIELDS` (seconds, bytes, bit/s).

    Args:
        env: an env in ``mode="eval"`` (wrapped or not).
        policy: anything with SB3's ``predict`` and a ``name``; an oracle must be bound to this env.
        episodes: number of episodes (default ``len(env.unwrapped.channels)``).
        deterministic: passed to ``predict``.
        seed: seeds the env at the first reset and is written to the rows' ``seed`` column (default the
            policy's ``seed`` attribute, or 0).
        progress: show a tqdm bar over requests.
    """
    base = env.unwrapped
    if getattr(base, "mode", None) != "eval":
        raise DynsplitError(f"rollout needs an env in mode 'eval', got mode {getattr(base, 'mode', None)!r}")
    bound = getattr(policy, "env", None)
    if bound is not None and bound is not base:
        raise DynsplitError(f"policy '{policy.name}' is bound to another env (the oracle reads its own env's "
                            "future; build it for the env being rolled out)")
    n_episodes = len(base.channels) if episodes is None else episodes
    if isinstance(n_episodes, bool) or int(n_episodes) != n_episodes or n_episodes < 1:
        raise DynsplitError(f"episodes must be a positive integer, got {episodes!r}")
    n_episodes = int(n_episodes)
    label = seed if seed is not None else getattr(policy, "seed", None)
    label = 0 if label is None else int(label)
    name = str(getattr(policy, "name", type(policy).__name__))
    n_index = len(base.channels) * len(base.loads)
    bar = None
    if progress:
        from tqdm import tqdm

        total = n_episodes * base.max_eval_requests if base.max_eval_requests else None
        bar = tqdm(total=total, desc=name, unit="req", leave=False)
    rows: list[dict[str, Any]] = []
    try:
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed if episode == 0 else None, options={"trace_index": episode % n_index})
            step, done = 0, False
            while not done:
                action, _ = policy.predict(obs, deterministic=deterministic)
                action = int(np.asarray(action).reshape(-1)[0])
                obs, _, terminated, truncated, info = env.step(action)
                row = {"policy": name, "seed": label, "episode": episode, "trace": info["trace"], "step": step,
                       "action": action}
                row.update((key, info[key]) for key in _INFO_FIELDS)
                row["failed"] = bool(row["failed"])
                rows.append(row)
                step += 1
                done = terminated or truncated
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return rows


# ---------------------------------------------------------------------------------------------- summary
def finite_or_none(value: float | None) -> float | None:
    """``float(value)``, or ``None`` for ``None``, NaN or infinity (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ci(samples: np.ndarray) -> list[float | None] | None:
    """95% percentile interval of bootstrap samples (NaN/inf resamples dropped), or ``None``."""
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        return None
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(rows: Iterable[dict[str, Any]], action_names: Sequence[str], *, n_boot: int = N_BOOTSTRAP,
              ci_seed: int = BOOTSTRAP_SEED, block_s: float | None = None) -> dict[str, Any]:
    """Per-policy statistics of request rows (from :func:`rollout`), pooled over seeds.

    Returns ``{"policies": {name: stats}, "oracle_switch_fraction", "argmin_oracle_gap", "bootstrap"}``;
    ``stats`` holds ``mean_latency_s``, ``mean_latency_ci95`` ([low, high] seconds), ``p50/p95/p99_latency_s``,
    ``mean_regret_s``, ``requests``, ``failed``, ``action_counts`` ({action name: count}), ``per_seed``
    ({seed: mean latency s}), ``episodes`` and -- when both ``argmin`` and ``oracle`` are in the rows --
    ``gap_closure``, ``gap_closure_ci95``, ``ratio_to_argmin``, ``ratio_to_oracle`` (``None`` where a
    denominator is 0, e.g. when argmin equals the oracle).

    Dataset level: ``oracle_switch_fraction`` is the fraction of consecutive requests (within an episode)
    at which the oracle's action changes -- from the ``oracle`` policy's own rows when present (the oracle
    action depends on the request times, which depend on the policy), else from the first policy's
    ``oracle_action`` column. ``argmin_oracle_gap`` is ``(argmin - oracle) / oracle`` of mean latency when
    both ran, else the per-request ``mean regret / mean oracle latency`` of ``argmin``'s rows, else ``None``.

    Intervals: ``n_boot`` resamples (fixed seed ``ci_seed``) of whole episodes -- or, with ``block_s``,
    of consecutive ``block_s``-second blocks of simulated time within episodes -- shared by all
    policies (paired); ``None`` with fewer than two units. Seeds of one policy stay together in a unit,
    so the interval reflects the conditions, not the spread over seeds (see ``per_seed`` for that).
    """
    if block_s is not None and not (math.isfinite(block_s) and block_s > 0):
        raise DynsplitError(f"bootstrap block must be a positive number of seconds, got {block_s!r}")
    names = list(action_names)
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_policy.setdefault(str(row["policy"]), []).append(row)
    if not by_policy:
        raise DynsplitError("no request rows to summarise")

    def unit_of(row: dict[str, Any]) -> tuple[int, int]:
        block = int(row["sim_time_s"] // block_s) if block_s is not None else 0
        return int(row["episode"]), block

    units = sorted({unit_of(r) for rs in by_policy.values() for r in rs})
    unit_index = {u: i for i, u in enumerate(units)}
    n_units = len(units)
    rng = np.random.default_rng(ci_seed)
    weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=int(n_boot)).astype(np.float64)

    policies: dict[str, dict[str, Any]] = {}
    boot: dict[str, np.ndarray] = {}
    means: dict[str, float] = {}
    for name, prow in by_policy.items():
        lat = np.array([r["latency_s"] for r in prow], dtype=np.float64)
        idx = np.array([unit_index[unit_of(r)] for r in prow])
        sums = np.bincount(idx, weights=lat, minlength=n_units)
        counts = np.bincount(idx, minlength=n_units).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot[name] = (weights @ sums) / (weights @ counts)
        means[name] = float(lat.mean())
        actions = np.bincount([int(r["action"]) for r in prow], minlength=len(names))
        seeds: dict[str, list[float]] = {}
        for r in prow:
            seeds.setdefault(str(r["seed"]), []).append(r["latency_s"])
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        policies[name] = {
            "mean_latency_s": means[name],
            "mean_latency_ci95": _ci(boot[name]) if n_units > 1 else None,
            "p50_latency_s": float(p50),
            "p95_latency_s": float(p95),
            "p99_latency_s": float(p99),
            "mean_regret_s": float(np.mean([r["regret_s"] for r in prow])),
            "requests": int(lat.size),
            "failed": int(sum(bool(r["failed"]) for r in prow)),
            "action_counts": {n: int(c) for n, c in zip(names, actions[:len(names)], strict=True)},
            "episodes": len({int(r["episode"]) for r in prow}),
            "per_seed": {s: float(np.mean(v)) for s, v in seeds.items()},
        }

    if "argmin" in means and "oracle" in means:
        a, o = means["argmin"], means["oracle"]
        ba, bo = boot["argmin"], boot["oracle"]
        for name, stats in policies.items():
            p, bp = means[name], boot[name]
            with np.errstate(invalid="ignore", divide="ignore"):
                g_boot = (ba - bp) / (ba - bo)
            stats["gap_closure"] = (a - p) / (a - o) if a != o else None
            stats["gap_closure_ci95"] = _ci(g_boot) if n_units > 1 and a != o else None
            stats["ratio_to_argmin"] = p / a if a > 0 else None
            stats["ratio_to_oracle"] = p / o if o > 0 else None

    return {
        "policies": policies,
        "oracle_switch_fraction": _switch_fraction(by_policy.get("oracle") or next(iter(by_policy.values()))),
        "argmin_oracle_gap": _argmin_oracle_gap(means, by_policy),
        "bootstrap": {"resamples": int(n_boot), "seed": int(ci_seed), "unit": "block" if block_s else "episode",
                      "block_s": block_s, "units": n_units, "confidence": 0.95},
    }


def _switch_fraction(rows: list[dict[str, Any]]) -> float | None:
    """Fraction of consecutive requests (same seed and episode) whose oracle action differs."""
    switches = pairs = 0
    prev_key, prev_action = None, None
    for r in rows:
        key = (r["seed"], r["episode"])
        if key == prev_key:
            pairs += 1
            switches += int(r["oracle_action"] != prev_action)
        prev_key, prev_action = key, r["oracle_action"]
    return switches / pairs if pairs else None


def _argmin_oracle_gap(means: dict[str, float], by_policy: dict[str, list[dict[str, Any]]]) -> float | None:
    if "argmin" in means and "oracle" in means:
        return (means["argmin"] - means["oracle"]) / means["oracle"] if means["oracle"] > 0 else None
    if "argmin" in by_policy:
        rows = by_policy["argmin"]
        oracle = float(np.mean([r["oracle_latency_s"] for r in rows]))
        return float(np.mean([r["regret_s"] for r in rows])) / oracle if oracle > 0 else None
    return None
