"""Figures from saved artefacts (experiments/plots.py): a hand-written fake OUTDIR, the bundled profile."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dynsplit.experiments import plots
from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.latency import LatencyConfig, LatencyModel
from dynsplit.splitting.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "envs" / "data" / "profiles" / "mobilenet_v3_large.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["policy", "seed", "episode", "trace", "step", "sim_time_s", "action", "action_name", "latency_s",
           "device_s", "transfer_s", "server_s", "bytes", "failed", "rate_bps_at_decision", "load",
           "oracle_action", "oracle_latency_s", "regret_s"]
POLICIES = ["argmin", "oracle", "ppo_lstm", "static", "local", "offload", "random"]


@pytest.fixture(scope="module")
def profile():
    return load_profile(BUNDLED)


def _fake_outdir(root: Path, profile, *, requests_csv: bool = True, profile_entry: str | None = None,
                 episodes: int = 2, seeds: tuple[int, ...] = (0, 1), duration_s: float = 60.0) -> Path:
    """Write results.json and requests.csv by hand, in the format of `dynsplit evaluate -o OUTDIR`.

    Latencies come from the profile's estimate at a piecewise-constant fake rate; the policies follow
    simple rules, so the figures look like real ones.
    """
    outdir = root / "run"
    outdir.mkdir(parents=True, exist_ok=True)
    model = LatencyModel(profile, LatencyConfig(codec="int8"))
    names = model.names
    rows = []
    rng = np.random.default_rng(0)
    for seed in seeds:
        for episode in range(episodes):
            trace_rates = np.exp(rng.normal(np.log(8e6), 1.0, size=int(duration_s) + 1))
            for policy in POLICIES:
                prng = np.random.default_rng(seed * 100 + episode)
                t, step, prev_rate = 0.0, 0, 5e6
                while t < duration_s:
                    rate = float(trace_rates[int(t)])
                    est = model.estimate(rate, 0.2)
                    oracle = int(np.argmin(est))
                    action = {
                        "oracle": oracle,
                        "argmin": int(np.argmin(model.estimate(prev_rate, 0.2))),
                        "ppo_lstm": oracle if prng.random() < 0.8 else int(prng.integers(model.n_actions)),
                        "static": 4,
                        "local": model.n_actions - 1,
                        "offload": 0,
                        "random": int(prng.integers(model.n_actions)),
                    }[policy]
                    latency = float(est[action])
                    rows.append([policy, seed, episode, f"trace{episode}", step, f"{t:.6f}", action, names[action],
                                 f"{latency:.6f}", model.device_s[action], 0.0, 0.0, int(model.bytes[action]),
                                 False, f"{rate:.1f}", 0.2, oracle, f"{est[oracle]:.6f}",
                                 f"{latency - est[oracle]:.6f}"])
                    t += latency
                    step += 1
                    prev_rate = rate
    if requests_csv:
        with (outdir / "requests.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    policies = {}
    for policy in POLICIES:
        lat = np.array([float(r[8]) for r in rows if r[0] == policy])
        half = 1.96 * lat.std() / math.sqrt(len(lat))
        policies[policy] = {
            "mean_latency_s": float(lat.mean()), "mean_latency_ci95": [lat.mean() - half, lat.mean() + half],
            "p50_latency_s": float(np.median(lat)), "p95_latency_s": float(np.quantile(lat, 0.95)),
            "p99_latency_s": float(np.quantile(lat, 0.99)), "mean_regret_s": 0.0, "ratio_to_argmin": 1.0,
            "ratio_to_oracle": 1.0, "requests": len(lat),
            "action_counts": {n: int(sum(1 for r in rows if r[0] == policy and r[7] == n)) for n in names},
        }
    policies["ppo_lstm"]["gap_closure"] = 0.42
    results = {"model": profile.model, "profile": profile_entry, "codec": "int8", "channel": "fake-channel",
               "load": 0.2, "env_kwargs": {"rtt_s": 0.02}, "seeds": list(seeds), "episodes": episodes,
               "action_names": names, "policies": policies}
    (outdir / "results.json").write_text(json.dumps(results))
    return outdir


def _assert_png(path: Path, min_bytes: int = 10_000) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, (path, len(data))
    assert not list(path.parent.glob(f".{path.stem}*")), "temporary file left behind"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynsplit plot")
    plots.add_plot_arguments(parser)
    return parser


# -- figures from an OUTDIR ------------------------------------------------------------------------------------
def test_each_figure_is_a_valid_png(tmp_path, profile):
    outdir = _fake_outdir(tmp_path, profile)
    cdf = plots.plot_latency_cdf(outdir)
    timeline = plots.plot_split_timeline(outdir)
    bars = plots.plot_latency_bars(outdir)
    assert (cdf, timeline, bars) == (outdir / "latency_cdf.png", outdir / "split_timeline.png",
                                     outdir / "mean_latency.png")
    for path in (cdf, timeline, bars):
        _assert_png(path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(cdf.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_plot_results_draws_all_four_with_a_profile_path(tmp_path, profile):
    outdir = _fake_outdir(tmp_path, profile, profile_entry=str(BUNDLED))
    paths = plots.plot_results(outdir)
    assert sorted(p.name for p in paths) == sorted(
        ["latency_cdf.png", "split_timeline.png", "mean_latency.png", "profile_rate_sweep.png"])
    for path in paths:
        _assert_png(path)


def test_plot_results_skips_figures_without_data(tmp_path, profile):
    outdir = _fake_outdir(tmp_path, profile, requests_csv=False, profile_entry=str(tmp_path / "gone.json"))
    notes = []
    paths = plots.plot_results(outdir, log=notes.append)
    assert [p.name for p in paths] == ["mean_latency.png"]
    assert any("latency_cdf.png" in n and "requests.csv" in n for n in notes)
    assert any("profile_rate_sweep.png" in n for n in notes)
    # A header-only requests.csv is missing data too.
    (outdir / "requests.csv").write_text(",".join(COLUMNS) + "\n")
    assert [p.name for p in plots.plot_results(outdir)] == ["mean_latency.png"]


def test_timeline_default_policies_and_selection(tmp_path, profile):
    assert plots._default_timeline_policies(POLICIES) == ["oracle", "argmin", "ppo_lstm"]
    assert plots._default_timeline_policies(["a", "dqn", "b", "c"]) == ["dqn"]
    assert plots._default_timeline_policies(["a", "b", "c", "d"]) == ["a", "b", "c"]
    outdir = _fake_outdir(tmp_path, profile, episodes=2, seeds=(0,), duration_s=40.0)
    _assert_png(plots.plot_split_timeline(outdir, policies=["local", "random"], episode=1, max_time_s=None))
    with pytest.raises(DynsplitError, match="policy 'ppo_lstn' has no requests.*did you mean 'ppo_lstm'"):
        plots.plot_split_timeline(outdir, policies=["ppo_lstn"])
    with pytest.raises(DynsplitError, match="episode 5 is not in .*requests.csv"):
        plots.plot_split_timeline(outdir, episode=5)


# -- the rate sweep and crossover rates ---------------------------------------------------------------------
@pytest.mark.parametrize("codec", ["raw", "float16", "int8"])
@pytest.mark.parametrize("load", [0.0, 0.6])
def test_crossover_intervals_are_contiguous_cover_the_range_and_are_argmin(profile, codec, load):
    lo, hi = 1e5, 1e8
    intervals = plots.crossover_rates(profile, codec, load, 0.01)
    model = LatencyModel(profile, LatencyConfig(codec=codec, rtt_s=0.01))
    assert intervals[0][0] == lo and intervals[-1][1] == hi
    for (_a, b, name), (c, _d, next_name) in zip(intervals, intervals[1:], strict=False):
        assert b == c and name != next_name
    for a, b, name in intervals:
        assert a < b
        for mid in (math.sqrt(a * b), (a + b) / 2):
            assert model.names[int(np.argmin(model.estimate(mid, load)))] == name
    # A dense grid finds no winner outside its interval.
    for rate in np.geomspace(lo, hi, 500):
        owner = next(n for a, b, n in intervals if a <= rate <= b)
        est = model.estimate(rate, load)
        assert est[model.names.index(owner)] <= est.min() + 1e-12


def test_crossover_rates_of_the_bundled_profile_go_from_local_to_offload(profile):
    intervals = plots.crossover_rates(BUNDLED, "int8")
    assert intervals[0][2] == "local" and intervals[-1][2] == "offload"
    assert 3 <= len(intervals) <= profile.n_actions
    custom = plots.crossover_rates(profile, "int8", rate_min_bps=1e6, rate_max_bps=2e6)
    assert custom[0][0] == 1e6 and custom[-1][1] == 2e6
    with pytest.raises(DynsplitError, match="codec 'int4'"):
        plots.crossover_rates(profile, "int4")
    with pytest.raises(DynsplitError, match="load must be a number in"):
        plots.crossover_rates(profile, "int8", load=2.0)


def test_rate_sweep_on_the_bundled_profile(tmp_path, profile):
    out = plots.plot_profile_rate_sweep(BUNDLED, tmp_path / "figs" / "sweep.png", codec="raw")
    _assert_png(out)
    out = plots.plot_profile_rate_sweep(profile, tmp_path / "sweep_int8.png", load=0.5, rtt_s=0.05,
                                        rates_mbps=[0.5, 1, 2, 5, 10, 50])
    _assert_png(out)
    with pytest.raises(DynsplitError, match="rates_mbps"):
        plots.plot_profile_rate_sweep(profile, tmp_path / "x.png", rates_mbps=[1.0])
    with pytest.raises(DynsplitError, match="x.txt.*expected a file name ending in"):
        plots.plot_profile_rate_sweep(profile, tmp_path / "x.txt")


# -- the command line and its errors ------------------------------------------------------------------------------
def test_cli_redraws_an_outdir_and_prints_paths(tmp_path, profile, capsys):
    outdir = _fake_outdir(tmp_path, profile)  # profile null: the bundled profile of the model
    args = _parser().parse_args([str(outdir), "--codec", "float16", "--max-time-s", "30"])
    assert plots.run_plot(args) == 0
    out = capsys.readouterr().out
    for name in ("latency_cdf.png", "split_timeline.png", "mean_latency.png", "profile_rate_sweep.png"):
        assert f"wrote {outdir / name}" in out
        _assert_png(outdir / name)
    assert "codec float16" in out and "Mbit/s  local" in out


def test_cli_profile_only_draws_the_rate_sweep(tmp_path, capsys):
    fig = tmp_path / "fig.png"
    args = _parser().parse_args(["--profile", str(BUNDLED), "-o", str(fig), "--codec", "raw", "--load", "0"])
    assert plots.run_plot(args) == 0
    _assert_png(fig)
    assert f"wrote {fig}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    args = _parser().parse_args(["--profile", "mobilenet_v3_large", "-o", str(tmp_path / "b.png")])
    assert plots.run_plot(args) == 0


@pytest.mark.parametrize("argv, message", [
    ([], "give OUTDIR"),
    (["--profile", str(BUNDLED)], "give the figure file"),
    (["--profile", "no_such.json", "-o", "x.png"], "no_such.json does not exist"),
])
def test_cli_usage_errors(argv, message):
    with pytest.raises(DynsplitError, match=message):
        plots.run_plot(_parser().parse_args(argv))


def test_missing_outdir_or_results(tmp_path):
    for outdir in (tmp_path / "nope", tmp_path):
        with pytest.raises(DynsplitError, match="has no results.json; run `dynsplit evaluate -o .*` first"):
            plots.run_plot(_parser().parse_args([str(outdir)]))
        with pytest.raises(DynsplitError, match="has no results.json"):
            plots.plot_latency_bars(outdir)


@pytest.mark.parametrize("text, message", [
    ('{"policies": {"a": ', "results.json is not valid JSON"),
    ("[1, 2]", "results.json is malformed: expected a JSON object"),
    ('{"policies": [1]}', "results.json is malformed: expected \"policies\""),
    ('{"policies": {"a": {"mean_latency_s": "fast"}}}', "policies.a.mean_latency_s"),
])
def test_corrupt_results_name_the_file(tmp_path, text, message):
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(DynsplitError, match=message):
        plots.plot_results(tmp_path)


def test_corrupt_requests_name_the_file_and_line(tmp_path, profile):
    outdir = _fake_outdir(tmp_path, profile, seeds=(0,), episodes=1, duration_s=10.0)
    path = outdir / "requests.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("latency_s")] = "slow"
    path.write_text("\n".join(lines[:3] + [",".join(row)] + lines[4:]) + "\n")
    with pytest.raises(DynsplitError, match=r"requests.csv line 4: column 'latency_s' should be a number, got 'slow'"):
        plots.plot_latency_cdf(outdir)
    path.write_text("policy,seed\nargmin,0\n")
    with pytest.raises(DynsplitError, match=r"requests.csv has no column\(s\) latency_s"):
        plots.plot_latency_cdf(outdir)
