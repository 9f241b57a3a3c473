"""Figures of saved evaluation results and of profiles (``dynsplit plot``, DESIGN §2.2).

Every figure is drawn from files only (the rl-baselines3-zoo habit): ``OUTDIR/results.json`` and
``OUTDIR/requests.csv`` as written by ``dynsplit evaluate -o OUTDIR``, and a profile JSON. Nothing is
simulated again. Figures:

* :func:`plot_latency_cdf` — ``latency_cdf.png``: empirical CDF of per-request latency per policy;
* :func:`plot_split_timeline` — ``split_timeline.png``: the uplink rate and the split each policy chose
  against simulated time, for one episode;
* :func:`plot_latency_bars` — ``mean_latency.png``: mean latency per policy with its 95% CI;
* :func:`plot_profile_rate_sweep` — ``profile_rate_sweep.png``: latency of every candidate of a profile
  against a constant uplink rate and the rates where each candidate wins (:func:`crossover_rates`).

Figures are drawn on a :class:`~matplotlib.figure.Figure` with the Agg canvas (never pyplot, so no GUI
backend and no global figure state) and written atomically: a temporary file with the same suffix in the
same folder, then ``os.replace``. Latency is in ms and rates in Mbit/s on the figures (DESIGN §2.3).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynsplit.splitting.atomic_files import atomic_output
from dynsplit.splitting.errors import DynsplitError, did_you_mean
from dynsplit.splitting.latency import LatencyConfig, LatencyModel
from dynsplit.splitting.profile import Profile, load_profile

RESULTS_FILE = "results.json"
REQUESTS_FILE = "requests.csv"
CDF_FILE = "latency_cdf.png"
TIMELINE_FILE = "split_timeline.png"
BARS_FILE = "mean_latency.png"
SWEEP_FILE = "profile_rate_sweep.png"

LEARNED_PREFIXES = ("ppo", "dqn")
DEFAULT_RATE_MIN_BPS = 1e5  # 0.1 Mbit/s
DEFAULT_RATE_MAX_BPS = 1e8  # 100 Mbit/s
DEFAULT_MAX_TIME_S = 120.0
DEFAULT_CODEC = "int8"  # the env's default codec; used when the profile has it and none is given
_CDF_MAX_POINTS = 4000
_CSV_CHUNK = 100_000
_DPI = 110

_STRING_COLUMNS = ("policy", "action_name", "trace", "seed")
_INT_COLUMNS = ("episode", "step", "action", "oracle_action")


class MissingDataError(DynsplitError):
    """The data a figure needs is not in OUTDIR; :func:`plot_results` skips that figure."""


# ---------------------------------------------------------------------------------------------------------
# Reading the artefacts


def load_results(outdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``OUTDIR/results.json``; :class:`DynsplitError` naming the file on any problem."""
    outdir = Path(outdir)
    path = outdir / RESULTS_FILE
    if not path.is_file():
        raise DynsplitError(f"{outdir} has no {RESULTS_FILE}; run `dynsplit evaluate -o {outdir}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DynsplitError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
                            "re-run `dynsplit evaluate`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DynsplitError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DynsplitError(f"{path} is malformed: expected a JSON object, got {type(data).__name__}")
    policies = data.get("policies")
    if not isinstance(policies, dict) or not all(isinstance(v, dict) for v in policies.values()):
        raise DynsplitError(f"{path} is malformed: expected \"policies\" to be an object of per-policy objects")
    names = data.get("action_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DynsplitError(f"{path} is malformed: expected \"action_names\" to be a list of strings")
    return data


def load_requests(outdir: str | os.PathLike[str], columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``columns`` of ``OUTDIR/requests.csv`` into arrays (strings for policy/action_name/trace/seed,
    int64 for episode/step/action/oracle_action, float64 otherwise).

    Raises :class:`MissingDataError` when the file is absent or has no rows, :class:`DynsplitError`
    naming the file when a column is missing or a value does not parse.
    """
    if not columns:
        raise ValueError("load_requests needs at least one column")
    path = Path(outdir) / REQUESTS_FILE
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist; run `dynsplit evaluate -o {Path(outdir)}` first")
    chunks: dict[str, list[Any]] = {name: [] for name in columns}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise MissingDataError(f"{path} is empty")
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DynsplitError(f"{path} has no column(s) {', '.join(missing)} (header: "
                                    f"{', '.join(header)}); re-run `dynsplit evaluate`")
            index = [header.index(c) for c in columns]
            need = max(index) + 1
            interned: dict[str, str] = {}
            block: list[list[str]] = [[] for _ in columns]
            lines: list[int] = []
            for row in reader:
                if not row:
                    continue
                if len(row) < need:
                    raise DynsplitError(f"{path} line {reader.line_num} has {len(row)} fields, "
                                        f"expected {len(header)}")
                for values, j in zip(block, index, strict=True):
                    values.append(row[j])
                lines.append(reader.line_num)
                if len(lines) >= _CSV_CHUNK:
                    _convert_block(path, columns, block, lines, chunks, interned)
                    block, lines = [[] for _ in columns], []
            if lines:
                _convert_block(path, columns, block, lines, chunks, interned)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DynsplitError(f"cannot read {path}: {exc}") from None
    if not chunks[columns[0]]:
        raise MissingDataError(f"{path} has no requests")
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def _convert_block(path: Path, columns: Sequence[str], block: list[list[str]], lines: list[int],
                   chunks: dict[str, list[Any]], interned: dict[str, str]) -> None:
    """Turn one block of CSV fields into arrays (strings shared through ``interned``)."""
    for name, values in zip(columns, block, strict=True):
        if name in _STRING_COLUMNS:
            chunks[name].append(np.array([interned.setdefault(v, v) for v in values], dtype=object))
            continue
        try:
            array = np.array(values, dtype=np.float64)
        except ValueError:
            bad = next(i for i, v in enumerate(values) if not _is_number(v))
            raise DynsplitError(f"{path} line {lines[bad]}: column '{name}' should be a number, "
                                f"got {values[bad]!r}") from None
        if name in _INT_COLUMNS:
            if not np.all(np.isfinite(array)):
                bad = int(np.flatnonzero(~np.isfinite(array))[0])
                raise DynsplitError(f"{path} line {lines[bad]}: column '{name}' should be an integer, "
                                    f"got {values[bad]!r}")
            array = array.astype(np.int64)
        chunks[name].append(array)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _policy_names(results: Mapping[str, Any], table: Mapping[str, np.ndarray] | None = None) -> list[str]:
    """Policies in the order of results.json, then any others found in requests.csv."""
    names = list(results.get("policies", {}))
    if table is not None:
        for name in dict.fromkeys(table["policy"].tolist()):
            if name not in names:
                names.append(name)
    return names


def _action_names(results: Mapping[str, Any], table: Mapping[str, np.ndarray]) -> list[str]:
    """Action names in action order: results.json's ``action_names``, else those seen in requests.csv."""
    n_seen = int(table["action"].max()) + 1 if len(table["action"]) else 0
    names = results.get("action_names")
    if names and len(names) >= n_seen:
        return list(names)
    labels = {int(a): str(n) for a, n in zip(table["action"], table["action_name"], strict=True)}
    return [labels.get(a, str(a)) for a in range(n_seen)]


# ---------------------------------------------------------------------------------------------------------
# Figure helpers


def _figure(width: float, height: float, **kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file with the same suffix, then ``os.replace``).

    The format follows the suffix (``.png`` unless it is another format matplotlib writes).
    """
    out = Path(path)
    fmt = out.suffix.lstrip(".").lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise DynsplitError(f"cannot write figure {out}: expected a file name ending in "
                            f"{', '.join('.' + k for k in sorted(supported))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=_DPI)
    return out


def _policy_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One colour per policy, stable across figures; the oracle black and dashed."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if len(names) <= 10 else colormaps["tab20"]
    styles, k = {}, 0
    for name in names:
        if name == "oracle":
            styles[name] = {"color": "black", "linestyle": "--"}
        else:
            styles[name] = {"color": cmap(k % cmap.N), "linestyle": "-"}
            k += 1
    return styles


def _action_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.95, n)]


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:.3g}"


def _suptitle(fig: Any, title: str, results: Mapping[str, Any]) -> None:
    label = _run_label(results)
    fig.suptitle(f"{title}\n{label}" if label else title, fontsize=10)


def _run_label(results: Mapping[str, Any]) -> str:
    parts = [str(results[k]) for k in ("model", "channel") if results.get(k)]
    if results.get("codec"):
        parts.append(f"codec {results['codec']}")
    if results.get("load") is not None:
        parts.append(f"load {results['load']}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# 1. Latency CDF


def plot_latency_cdf(outdir: str | os.PathLike[str]) -> Path:
    """Empirical CDF of per-request latency (ms, log axis), one line per policy; ``OUTDIR/latency_cdf.png``."""
    results = load_results(outdir)
    table = load_requests(outdir, ("policy", "latency_s"))
    return _draw_latency_cdf(Path(outdir), results, table)


def _draw_latency_cdf(outdir: Path, results: Mapping[str, Any], table: Mapping[str, np.ndarray]) -> Path:
    names = _policy_names(results, table)
    styles = _policy_styles(names)
    means = []
    for name in names:
        lat = table["latency_s"][table["policy"] == name]
        means.append(float(lat.mean()) if len(lat) else math.inf)
    fig = _figure(8.0, 4.8)
    ax = fig.add_subplot()
    lo, hi = math.inf, 0.0
    for name in [n for _, n in sorted(zip(means, names, strict=True))]:
        lat = np.sort(table["latency_s"][table["policy"] == name]) * 1e3
        if not len(lat):
            continue
        lat = lat[lat > 0] if np.any(lat > 0) else np.full(1, 1e-3)
        n = len(lat)
        prob = np.arange(1, n + 1) / n
        if n > _CDF_MAX_POINTS:  # thin out, keeping both ends
            keep = np.unique(np.linspace(0, n - 1, _CDF_MAX_POINTS).astype(np.int64))
            lat, prob = lat[keep], prob[keep]
        lo, hi = min(lo, float(lat[0])), max(hi, float(lat[-1]))
        ax.step(np.r_[lat[0], lat], np.r_[0.0, prob], where="post", linewidth=1.4,
                label=f"{name}  (mean {_ms(float(np.mean(table['latency_s'][table['policy'] == name])))} ms)",
                **styles[name])
    ax.set_xscale("log")
    if math.isfinite(lo):
        ax.set_xlim(lo / 1.15, hi * 1.15)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("latency per request (ms, log scale)")
    ax.set_ylabel("fraction of requests  ≤  latency")
    ax.grid(True, which="both", alpha=0.25)
    _suptitle(fig, "Latency CDF per policy", results)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              title="policy (sorted by mean)", title_fontsize=8)
    return save_figure(fig, outdir / CDF_FILE)


# ---------------------------------------------------------------------------------------------------------
# 2. Split timeline


def _default_timeline_policies(names: Sequence[str]) -> list[str]:
    """``oracle``, ``argmin`` and learned agents (``ppo*``, ``dqn*``) present; otherwise the first three."""
    chosen = [n for n in ("oracle", "argmin") if n in names]
    chosen += [n for n in names if n.lower().startswith(LEARNED_PREFIXES) and n not in chosen]
    return chosen or list(names[:3])


def plot_split_timeline(outdir: str | os.PathLike[str], policies: Sequence[str] | None = None, episode: int = 0,
                        max_time_s: float | None = DEFAULT_MAX_TIME_S, seed: str | int | None = None) -> Path:
    """Uplink rate at decision and the split each policy chose against simulated time, for one episode.

    ``policies`` defaults to oracle, argmin and any learned agent (names starting with ppo/dqn), else the
    first three policies. ``episode`` selects the episode (trace) and ``seed`` the evaluation seed (default:
    the first one in ``requests.csv``); only the first ``max_time_s`` seconds are drawn (``None``: all).
    Writes ``OUTDIR/split_timeline.png``.
    """
    results = load_results(outdir)
    table = load_requests(outdir, _TIMELINE_COLUMNS)
    return _draw_split_timeline(Path(outdir), results, table, policies, episode, max_time_s, seed)


_TIMELINE_COLUMNS = ("policy", "seed", "episode", "sim_time_s", "action", "action_name",
                     "rate_bps_at_decision", "trace", "latency_s")


def _draw_split_timeline(outdir: Path, results: Mapping[str, Any], table: Mapping[str, np.ndarray],
                         policies: Sequence[str] | None, episode: int, max_time_s: float | None,
                         seed: str | int | None) -> Path:
    names = _policy_names(results, table)
    present = set(table["policy"].tolist())
    if policies is None:
        selected = [n for n in _default_timeline_policies(names) if n in present]
        if not selected:
            raise MissingDataError(f"{outdir / REQUESTS_FILE} has no requests of the policies "
                                   f"{', '.join(_default_timeline_policies(names))}")
    else:
        selected = list(policies)
        if not selected:
            raise DynsplitError("give at least one policy for the split timeline")
        for name in selected:
            if name not in present:
                raise DynsplitError(f"policy '{name}' has no requests in {outdir / REQUESTS_FILE}"
                                    f"{did_you_mean(name, sorted(present))} (policies: {', '.join(sorted(present))})")
    if max_time_s is not None and not max_time_s > 0:
        raise DynsplitError(f"max_time_s must be a positive number of seconds or None, got {max_time_s!r}")
    in_episode = table["episode"] == int(episode)
    if not np.any(in_episode):
        episodes = sorted(set(table["episode"].tolist()))
        raise DynsplitError(f"episode {episode} is not in {outdir / REQUESTS_FILE} (episodes: "
                            f"{_short_list(episodes)})")
    if seed is None:
        seed = table["seed"][np.flatnonzero(in_episode)[0]]
    seed = str(seed)
    in_run = in_episode & (table["seed"] == seed)
    if not np.any(in_run):
        raise DynsplitError(f"seed {seed} is not in {outdir / REQUESTS_FILE} (seeds: "
                            f"{_short_list(sorted(set(table['seed'].tolist())))})")
    if max_time_s is not None:
        in_run &= table["sim_time_s"] <= max_time_s
    actions = _action_names(results, table)
    trace = str(table["trace"][np.flatnonzero(in_run)[0]])

    height = 1.9 + sum(0.6 + 0.19 * len(actions) for _ in selected)
    fig = _figure(10.0, height)
    ratios = [1.6] + [0.5 + 0.19 * len(actions)] * len(selected)
    axes = fig.subplots(len(selected) + 1, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    styles = _policy_styles(names)

    # Top: the trace's rate, sampled at every decision of every policy shown (all walk the same trace).
    rate_rows = in_run & (table["trace"] == trace)
    t_rate = table["sim_time_s"][rate_rows]
    order = np.argsort(t_rate, kind="stable")
    t_rate, rate = t_rate[order], table["rate_bps_at_decision"][rate_rows][order] / 1e6
    ax = axes[0]
    ax.step(t_rate, rate, where="post", color="tab:blue", linewidth=0.9)
    ax.fill_between(t_rate, rate, step="post", color="tab:blue", alpha=0.15, linewidth=0)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("uplink rate at\ndecision (Mbit/s)")
    ax.grid(True, alpha=0.25)
    shown = f"first {max_time_s:g} s" if max_time_s is not None else "whole episode"
    ax.set_title(f"Chosen split against time — episode {episode} (trace {trace}, seed {seed}, {shown})",
                 fontsize=10)

    t_end = 0.0
    for ax, name in zip(axes[1:], selected, strict=True):
        rows = in_run & (table["policy"] == name)
        t = table["sim_time_s"][rows]
        order = np.argsort(t, kind="stable")
        t, act, lat = t[order], table["action"][rows][order], table["latency_s"][rows][order]
        if len(t):
            t_end = max(t_end, float(t[-1] + lat[-1]))
            # Each action holds from its decision until the request completes (closed loop).
            ax.step(np.r_[t, t[-1] + lat[-1]], np.r_[act, act[-1]], where="post", linewidth=1.1,
                    color=styles[name]["color"])
            ax.plot(t, act, linestyle="none", marker="o", markersize=1.8, color=styles[name]["color"])
            mean = f"{len(t)} requests, mean {_ms(float(lat.mean()))} ms"
        else:
            mean = "no requests in this window"
        ax.set_yticks(range(len(actions)), actions, fontsize=7)
        ax.set_ylim(-0.6, len(actions) - 0.4)
        ax.grid(True, axis="y", alpha=0.25)
        ax.set_title(f"{name}  ({mean})", fontsize=9, loc="left")
    if max_time_s is not None:
        t_end = min(t_end, max_time_s)
    axes[0].set_xlim(0.0, t_end if t_end > 0 else (max_time_s or 1.0))
    axes[-1].set_xlabel("simulated time since episode start (s)")
    return save_figure(fig, outdir / TIMELINE_FILE)


def _short_list(values: Sequence[Any], limit: int = 12) -> str:
    text = ", ".join(str(v) for v in values[:limit])
    return text + (", ..." if len(values) > limit else "")


# ---------------------------------------------------------------------------------------------------------
# 3. Mean latency bars


def plot_latency_bars(outdir: str | os.PathLike[str]) -> Path:
    """Mean latency per policy (ms) with its 95% CI as error bars, best first; ``OUTDIR/mean_latency.png``."""
    return _draw_latency_bars(Path(outdir), load_results(outdir))


def _draw_latency_bars(outdir: Path, results: Mapping[str, Any]) -> Path:
    path = outdir / RESULTS_FILE
    rows = []
    for name, stats in results["policies"].items():
        mean = stats.get("mean_latency_s")
        if mean is None:
            continue
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            raise DynsplitError(f"{path} is malformed: policies.{name}.mean_latency_s should be a number "
                                f"of seconds, got {mean!r}")
        ci = stats.get("mean_latency_ci95")
        if ci is not None:
            if (not isinstance(ci, (list, tuple)) or len(ci) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ci)):
                raise DynsplitError(f"{path} is malformed: policies.{name}.mean_latency_ci95 should be "
                                    f"[low, high] in seconds, got {ci!r}")
            ci = (float(ci[0]), float(ci[1])) if all(math.isfinite(v) for v in ci) else None
        rows.append((float(mean), name, ci, stats.get("gap_closure")))
    if not rows:
        raise MissingDataError(f"{path} has no policy with a mean_latency_s")
    rows.sort(key=lambda r: r[0])
    styles = _policy_styles(list(results["policies"]))
    fig = _figure(8.0, 1.2 + 0.38 * len(rows))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    means = np.array([r[0] for r in rows]) * 1e3
    lower = np.array([(r[0] - r[2][0]) if r[2] else 0.0 for r in rows]) * 1e3
    upper = np.array([(r[2][1] - r[0]) if r[2] else 0.0 for r in rows]) * 1e3
    colors = [styles[r[1]]["color"] for r in rows]
    ax.barh(y, means, color=colors, alpha=0.8, height=0.65)
    ax.errorbar(means, y, xerr=np.vstack([np.maximum(lower, 0), np.maximum(upper, 0)]), fmt="none",
                ecolor="black", elinewidth=1.0, capsize=3)
    right = float(np.max(means + np.maximum(upper, 0)))
    has_gap = False
    for yi, (mean, name, _ci, gap) in zip(y, rows, strict=True):
        text = f"{_ms(mean)} ms"
        if isinstance(gap, (int, float)) and not isinstance(gap, bool) and math.isfinite(gap) \
                and name not in ("oracle", "argmin"):
            text += f"   g = {gap:.2f}"
            has_gap = True
        ax.text(1e3 * mean + upper[yi] + 0.01 * right, yi, text, va="center", fontsize=8)
    ax.set_yticks(y, [r[1] for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0.0, right * 1.32)
    ax.set_xlabel("mean latency per request (ms); error bars: 95% CI"
                  + ("\ng = gap closure = (argmin − policy) / (argmin − oracle)" if has_gap else ""))
    ax.grid(True, axis="x", alpha=0.25)
    _suptitle(fig, "Mean latency per policy", results)
    return save_figure(fig, outdir / BARS_FILE)


# ---------------------------------------------------------------------------------------------------------
# 4. Profile: latency against a constant rate, crossover rates


def _as_profile(profile_or_path: Profile | str | os.PathLike[str]) -> Profile:
    if isinstance(profile_or_path, Profile):
        return profile_or_path
    return load_profile(profile_or_path)


def _latency_model(profile: Profile, codec: str | None, rtt_s: float, load_model: str,
                   max_batch: int | None, max_transfer_s: float | None) -> LatencyModel:
    if codec is None:
        codec = DEFAULT_CODEC if DEFAULT_CODEC in profile.codecs else profile.codecs[0]
    extra = {} if max_transfer_s is None else {"max_transfer_s": float(max_transfer_s)}
    return LatencyModel(profile, LatencyConfig(codec=codec, load_model=load_model, max_batch=max_batch,
                                               rtt_s=float(rtt_s), **extra))


def _check_load(load: float) -> float:
    if isinstance(load, bool) or not isinstance(load, (int, float)) or not 0.0 <= load <= 1.0:
        raise DynsplitError(f"load must be a number in [0, 1], got {load!r}")
    return float(load)


def crossover_rates(profile: Profile | str | os.PathLike[str], codec: str | None = None, load: float = 0.0,
                    rtt_s: float = 0.010, *, rate_min_bps: float = DEFAULT_RATE_MIN_BPS,
                    rate_max_bps: float = DEFAULT_RATE_MAX_BPS, load_model: str = "batch",
                    max_batch: int | None = None,
                    max_transfer_s: float | None = None) -> list[tuple[float, float, str]]:
    """Which action has the lowest latency at which constant uplink rate.

    Returns ``[(rate_lo_bps, rate_hi_bps, action_name), ...]``: contiguous intervals, ascending, covering
    ``[rate_min_bps, rate_max_bps]``; in each the named action minimises
    :meth:`LatencyModel.estimate` (the latency if the rate stayed constant; ties go to the lower action
    index, as ``argmin``). Boundaries are found by bisection on the estimate to a relative 1e-9.
    ``codec=None`` is the env default ``int8`` when profiled, else the profile's first codec;
    ``load_model``, ``max_batch`` and ``max_transfer_s`` (``None``: the LatencyConfig default) are those of
    :class:`LatencyConfig`.
    """
    model = _latency_model(_as_profile(profile), codec, rtt_s, load_model, max_batch, max_transfer_s)
    load = _check_load(load)
    lo, hi = float(rate_min_bps), float(rate_max_bps)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
        raise DynsplitError(f"rate range must satisfy 0 < rate_min_bps < rate_max_bps, got {lo!r}, {hi!r}")

    def best(rate: float) -> int:
        return int(np.argmin(model.estimate(rate, load)))

    changes: list[tuple[float, int]] = []  # (rate where the winner changes, new winner), ascending

    def refine(a: float, b: float, wa: int, wb: int) -> None:
        while b / a - 1.0 > 1e-9:
            mid = math.sqrt(a * b)
            wm = best(mid)
            if wm != wa and wm != wb:  # a third winner inside: split the bracket in two
                refine(a, mid, wa, wm)
                a, wa = mid, wm
            elif wm == wa:
                a = mid
            else:
                b = mid
        changes.append((math.sqrt(a * b), wb))

    grid = np.geomspace(lo, hi, 1025)
    winners = [best(float(r)) for r in grid]
    for i in range(len(grid) - 1):
        if winners[i] != winners[i + 1]:
            refine(float(grid[i]), float(grid[i + 1]), winners[i], winners[i + 1])
    edges = [lo] + [r for r, _ in changes] + [hi]
    owners = [winners[0]] + [w for _, w in changes]
    raw = list(zip(edges[:-1], edges[1:], owners, strict=True))
    kept = [r for r in raw if r[1] / r[0] - 1.0 >= 1e-6] or raw[:1]  # drop tie points of zero width
    out: list[tuple[float, float, str]] = []
    for _a, b, w in kept:
        name = model.names[w]
        if out and out[-1][2] == name:
            out[-1] = (out[-1][0], b, name)
        else:
            out.append((out[-1][1] if out else lo, b, name))
    out[-1] = (out[-1][0], hi, out[-1][2])
    return out


def _fit_label(name: str, index: int, room: float) -> str:
    """``name`` if ``room`` characters fit, else the name broken in two lines at an underscore, else the
    action number."""
    if len(name) <= room:
        return name
    cuts = [i for i, ch in enumerate(name) if ch == "_"]
    if cuts:
        cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
        if max(cut + 1, len(name) - cut - 1) <= room:
            return name[: cut + 1] + "\n" + name[cut + 1:]
    return str(index) if room >= len(str(index)) else ""


def format_crossovers(intervals: Sequence[tuple[float, float, str]]) -> list[str]:
    """Lines ``"  0.1 – 1.85 Mbit/s  local"`` for printing."""
    return [f"  {_mbps(a):>7} – {_mbps(b):<7} Mbit/s  {name}" for a, b, name in intervals]


def plot_profile_rate_sweep(profile_or_path: Profile | str | os.PathLike[str], path: str | os.PathLike[str],
                            codec: str | None = None, load: float = 0.0, rtt_s: float = 0.010,
                            rates_mbps: Sequence[float] | np.ndarray | None = None, *,
                            load_model: str = "batch", max_batch: int | None = None,
                            max_transfer_s: float | None = None) -> Path:
    """Latency (ms) of every candidate against a constant uplink rate (Mbit/s, log), the lower envelope
    (thick) and the rate ranges where each candidate wins, from a profile alone.

    Latencies are :meth:`LatencyModel.estimate` of the profile with ``LatencyConfig(codec, load_model,
    max_batch, rtt_s, max_transfer_s)`` at load ``load``. ``rates_mbps`` defaults to 400 log-spaced rates
    from 0.1 to 100 Mbit/s; the winning ranges are :func:`crossover_rates` over the same span. Returns the
    path written.
    """
    profile = _as_profile(profile_or_path)
    model = _latency_model(profile, codec, rtt_s, load_model, max_batch, max_transfer_s)
    load = _check_load(load)
    if rates_mbps is None:
        rates = np.geomspace(DEFAULT_RATE_MIN_BPS, DEFAULT_RATE_MAX_BPS, 400)
    else:
        rates = np.sort(np.asarray(rates_mbps, dtype=np.float64)) * 1e6
        if rates.ndim != 1 or len(rates) < 2 or not np.all(np.isfinite(rates)) or rates[0] <= 0 \
                or rates[0] == rates[-1]:
            raise DynsplitError("rates_mbps must hold at least two distinct positive rates (Mbit/s)")
    lat = np.array([model.estimate(float(r), load) for r in rates]) * 1e3  # (rates, actions), ms
    envelope = lat.min(axis=1)
    intervals = crossover_rates(profile, model.config.codec, load, rtt_s, rate_min_bps=float(rates[0]),
                                rate_max_bps=float(rates[-1]), load_model=load_model, max_batch=max_batch,
                                max_transfer_s=max_transfer_s)
    winners = {name for _, _, name in intervals}
    colors = _action_colors(model.n_actions)
    color_of = dict(zip(model.names, colors, strict=True))
    x = rates / 1e6

    fig = _figure(10.0, 5.8)
    strip, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1.0, 8.0]})
    for i, name in enumerate(model.names):
        win = name in winners
        ax.plot(x, lat[:, i], color=colors[i], linewidth=1.4 if win else 0.9, alpha=1.0 if win else 0.6,
                linestyle="-" if win else (0, (4, 2)), label=f"{i}  {name}" + ("" if win else "  (never best)"),
                zorder=3)
    ax.plot(x, envelope, color="gold", linewidth=7.0, alpha=0.7, label="lower envelope (best split)",
            solid_capstyle="butt", zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x[0], x[-1])
    top = min(float(lat.max()), 20.0 * float(envelope.max()))
    ax.set_ylim(0.8 * float(envelope.min()), 1.2 * top)
    ax.set_xlabel("constant uplink rate (Mbit/s, log scale)")
    ax.set_ylabel("latency per request (ms, log scale)")
    ax.grid(True, which="both", alpha=0.2)
    log_span = math.log(x[-1] / x[0])
    previous = -math.inf
    for a, _b, _name in intervals[1:]:
        ax.axvline(a / 1e6, color="0.3", linestyle=":", linewidth=0.9, zorder=1)
        close = math.log(a / 1e6 / previous) / log_span < 0.03 if previous > 0 else False
        ax.annotate(f"{_mbps(a)}", xy=(a / 1e6, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(2, 3) if not close else (2, 30), textcoords="offset points", fontsize=7,
                    color="0.25", rotation=90, va="bottom", ha="left")
        previous = a / 1e6
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              title="action  candidate", title_fontsize=8)

    # The strip above: which candidate wins where (name, wrapped name, or action number if too narrow).
    fig.canvas.draw()  # layout first, to know the strip's width in points
    width_pt = strip.get_window_extent().width * 72.0 / fig.dpi
    fontsize = 7.5
    for a, b, name in intervals:
        strip.axvspan(a / 1e6, b / 1e6, color=color_of[name], alpha=0.55, linewidth=0)
        room = math.log(b / a) / log_span * width_pt / (0.62 * fontsize)  # characters that fit
        label = _fit_label(name, model.names.index(name), room)
        strip.text(math.sqrt(a * b) / 1e6, 0.5, label, ha="center", va="center", fontsize=fontsize,
                   clip_on=True, linespacing=0.95)
    strip.set_yticks([])
    strip.set_ylim(0, 1)
    strip.set_ylabel("best", rotation=0, ha="right", va="center", fontsize=8)
    strip.tick_params(axis="x", which="both", labelbottom=False)
    rtt_ms = 1e3 * model.config.rtt_s
    load_text = f"{load:g}" + (f" ({load_model})" if load_model != "batch" else "")
    fig.suptitle(f"{profile.model}: latency of every split against a constant uplink rate\n"
                 f"codec {model.config.codec}, server load {load_text}, rtt {rtt_ms:g} ms;  "
                 "top bar and thick line: the best split;  dotted: crossover rates (Mbit/s)", fontsize=10)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------
# 5. Everything from an OUTDIR


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def resolve_results_profile(outdir: str | os.PathLike[str], results: Mapping[str, Any]) -> Profile | None:
    """The profile an evaluation used: ``profile_path`` or ``profile`` of results.json when that file exists
    (as given, or relative to OUTDIR), the bundled profile of ``model`` when ``profile`` is null, else None.
    """
    outdir = Path(outdir)
    named = [results.get("profile_path"), results.get("profile")]
    for value in named:
        if isinstance(value, str) and value:
            for candidate in (Path(value), outdir / value):
                if candidate.is_file():
                    return load_profile(candidate)
    if any(isinstance(v, str) and v for v in named):
        return None
    model = results.get("model")
    if isinstance(model, str) and model:
        from dynsplit.envs.profiles import bundled_profiles_dir

        path = bundled_profiles_dir() / f"{model}.json"
        if path.is_file():
            return load_profile(path, model=model)
    return None


def plot_results(outdir: str | os.PathLike[str], *, profile: Profile | str | os.PathLike[str] | None = None,
                 codec: str | None = None, load: float | None = None, rtt_s: float | None = None,
                 load_model: str | None = None, policies: Sequence[str] | None = None, episode: int = 0,
                 max_time_s: float | None = DEFAULT_MAX_TIME_S, sweep_path: str | os.PathLike[str] | None = None,
                 log: Callable[[str], None] | None = None) -> list[Path]:
    """Draw every figure the saved results of ``OUTDIR`` allow; returns the paths written.

    The CDF and the timeline need ``requests.csv``, the bars ``results.json``; a figure whose data is
    missing is skipped (reported through ``log``). The rate sweep is drawn when a profile is known:
    ``profile``, else the one results.json names (see :func:`resolve_results_profile`); its codec, rtt,
    load model and (numeric) load come from results.json unless given. Errors in existing files raise
    :class:`DynsplitError`.
    """
    outdir = Path(outdir)
    results = load_results(outdir)
    say = log or (lambda _msg: None)
    written: list[Path] = []
    try:
        table = load_requests(outdir, _TIMELINE_COLUMNS)
    except MissingDataError as exc:
        say(f"skipped {CDF_FILE} and {TIMELINE_FILE}: {exc}")
        table = None
    if table is not None:
        written.append(_draw_latency_cdf(outdir, results, table))
        try:
            written.append(_draw_split_timeline(outdir, results, table, policies, episode, max_time_s, None))
        except MissingDataError as exc:
            say(f"skipped {TIMELINE_FILE}: {exc}")
    try:
        written.append(_draw_latency_bars(outdir, results))
    except MissingDataError as exc:
        say(f"skipped {BARS_FILE}: {exc}")

    prof = _as_profile(profile) if profile is not None else resolve_results_profile(outdir, results)
    if prof is None:
        say(f"skipped {SWEEP_FILE}: {outdir / RESULTS_FILE} names no profile file that exists (pass --profile)")
        return written
    sweep = sweep_options(results, codec=codec, load=load, rtt_s=rtt_s, load_model=load_model)
    written.append(plot_profile_rate_sweep(prof, sweep_path or outdir / SWEEP_FILE, **sweep))
    return written


def sweep_options(results: Mapping[str, Any] | None, *, codec: str | None = None, load: float | None = None,
                  rtt_s: float | None = None, load_model: str | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`plot_profile_rate_sweep` / :func:`crossover_rates` for an evaluation:
    explicit values first, then results.json (``codec``, numeric ``load``, ``env_kwargs``: ``rtt_s``,
    ``load_model``, ``max_batch``, ``max_transfer_s``), then defaults (load 0, rtt 10 ms, batch load
    model, LatencyConfig's transfer bound)."""
    results = results or {}
    env = results.get("env_kwargs") if isinstance(results.get("env_kwargs"), dict) else {}
    if codec is None:
        codec = results.get("codec") or env.get("codec")
    if load is None:
        load = _number(results.get("load"))
        if load is None:
            load = _number(env.get("load"))
        load = 0.0 if load is None or not 0.0 <= load <= 1.0 else load
    if rtt_s is None:
        rtt_s = _number(env.get("rtt_s"))
        rtt_s = 0.010 if rtt_s is None else rtt_s
    if load_model is None:
        load_model = env.get("load_model") if isinstance(env.get("load_model"), str) else "batch"
    max_batch = env.get("max_batch") if isinstance(env.get("max_batch"), int) else None
    max_transfer = _number(env.get("max_transfer_s"))
    return {"codec": codec if isinstance(codec, str) else None, "load": float(load), "rtt_s": float(rtt_s),
            "load_model": load_model, "max_batch": max_batch,
            "max_transfer_s": max_transfer if max_transfer and max_transfer > 0 else None}


# ---------------------------------------------------------------------------------------------------------
# 6. Command line: dynsplit plot


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dynsplit plot [OUTDIR] [--profile P] [--codec C] [-o FIG.png] ...``."""
    parser.add_argument("outdir", nargs="?", default=None, metavar="OUTDIR",
                        help="folder written by `dynsplit evaluate -o OUTDIR` (omit to draw only the rate sweep "
                             "of --profile into -o)")
    parser.add_argument("--profile", default=None, metavar="PROFILE.json",
                        help="profile for the rate sweep (a file or a bundled model name; default: the one "
                             "results.json names)")
    parser.add_argument("--codec", default=None, help="codec of the rate sweep (default: the evaluation's, else int8)")
    parser.add_argument("--load", type=float, default=None,
                        help="constant server load in [0, 1] of the rate sweep (default: the evaluation's if "
                             "constant, else 0)")
    parser.add_argument("--rtt-s", type=float, default=None, help="rtt of the rate sweep in seconds (default 0.01)")
    parser.add_argument("--load-model", default=None, help="batch or sharing (default: the evaluation's, else batch)")
    parser.add_argument("-o", "--output", default=None, metavar="FIG.png",
                        help="file of the rate sweep (default OUTDIR/profile_rate_sweep.png; required without OUTDIR)")
    parser.add_argument("--policies", default=None,
                        help="comma-separated policies of the split timeline (default: oracle, argmin, ppo*/dqn*)")
    parser.add_argument("--episode", type=int, default=0, help="episode of the split timeline (default 0)")
    parser.add_argument("--max-time-s", type=float, default=DEFAULT_MAX_TIME_S,
                        help=f"seconds of the episode the timeline shows (default {DEFAULT_MAX_TIME_S:g}; 0: all)")


def _profile_argument(text: str) -> Profile:
    path = Path(text)
    if not path.exists() and path.suffix == "" and os.sep not in text:
        from dynsplit.envs.profiles import bundled_profiles_dir

        bundled = bundled_profiles_dir() / f"{text}.json"
        if bundled.is_file():
            return load_profile(bundled, model=text)
    return load_profile(path)


def run_plot(args: argparse.Namespace) -> int:
    """``dynsplit plot``: redraw figures from saved results (or only the rate sweep of a profile)."""
    profile = _profile_argument(args.profile) if args.profile else None
    policies = [p.strip() for p in args.policies.split(",") if p.strip()] if args.policies else None
    max_time = args.max_time_s if args.max_time_s and args.max_time_s > 0 else None
    if args.load is not None:
        _check_load(args.load)
    if args.rtt_s is not None and not (math.isfinite(args.rtt_s) and args.rtt_s >= 0):
        raise DynsplitError(f"--rtt-s must be a number of seconds >= 0, got {args.rtt_s!r}")

    def note(msg: str) -> None:
        print(f"dynsplit plot: {msg}", file=sys.stderr)

    if args.outdir is None:
        if profile is None:
            raise DynsplitError("give OUTDIR (from `dynsplit evaluate -o OUTDIR`) or --profile PROFILE.json "
                                "-o FIG.png")
        if args.output is None:
            raise DynsplitError("without OUTDIR, give the figure file: dynsplit plot --profile PROFILE.json -o FIG.png")
        opts = sweep_options(None, codec=args.codec, load=args.load, rtt_s=args.rtt_s, load_model=args.load_model)
        written = [plot_profile_rate_sweep(profile, args.output, **opts)]
        _print_crossovers(profile, opts)
    else:
        outdir = Path(args.outdir)
        results = load_results(outdir)
        written = plot_results(outdir, profile=profile, codec=args.codec, load=args.load, rtt_s=args.rtt_s,
                               load_model=args.load_model, policies=policies, episode=args.episode, max_time_s=max_time,
                               sweep_path=args.output, log=note)
        prof = profile or resolve_results_profile(outdir, results)
        if prof is not None:
            _print_crossovers(prof, sweep_options(results, codec=args.codec, load=args.load, rtt_s=args.rtt_s,
                                                  load_model=args.load_model))
        elif args.output is not None:
            note(f"-o {args.output} names the rate-sweep figure, but there is no profile to draw it from")
    for path in written:
        print(f"wrote {path}")
    return 0


def _print_crossovers(profile: Profile, opts: Mapping[str, Any]) -> None:
    intervals = crossover_rates(profile, **opts)
    codec = opts["codec"] or (DEFAULT_CODEC if DEFAULT_CODEC in profile.codecs else profile.codecs[0])
    print(f"best split at a constant rate ({profile.model}, codec {codec}, load {opts['load']:g}, "
          f"rtt {1e3 * opts['rtt_s']:g} ms):")
    for line in format_crossovers(intervals):
        print(line)
