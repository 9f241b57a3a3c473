"""Rollouts, the summary with its bootstrap intervals, and ``run_evaluate`` writing a run folder."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
from test_baselines import LOCAL, MID, OFFLOAD, constant_trace, tiny_env, tiny_env_kwargs

from dynsplit.agents.baselines import ArgminPolicy, FixedPolicy, OraclePolicy, RandomPolicy
from dynsplit.agents.evaluation import ROW_FIELDS, rollout, summarize
from dynsplit.envs import synthetic
from dynsplit.experiments.evaluate import add_evaluate_arguments, evaluate_policies, run_evaluate
from dynsplit.splitting.errors import DynsplitError

ACTIONS = ["offload", "mid", "local"]


def _traces():
    """Three volatile traces, so that argmin loses to the oracle and there are three episodes."""
    return [synthetic.steps((100e6, 3e6, 20e6, 0.5e6), step_s=1.5),
            synthetic.steps((8e6, 60e6, 1e6), step_s=2.5),
            synthetic.steps((30e6, 2e6), step_s=0.7)]


# --------------------------------------------------------------------------------------------------- rollout
def test_rollouts_see_identical_request_conditions():
    traces = _traces()
    first = rollout(tiny_env(traces), FixedPolicy(LOCAL, "local"))
    again = rollout(tiny_env(traces), FixedPolicy(LOCAL, "local"))
    assert first == again
    used = tiny_env(traces)
    for _ in range(4):  # advance the env's own episode counter: rollout still starts at trace 0
        used.reset()
    other = rollout(used, FixedPolicy(OFFLOAD, "offload"))
    for rows in (first, other):
        assert [r["trace"] for r in rows if r["step"] == 0] == [t.name for t in traces]
        for r in rows:  # the conditions are a function of the trace and the request time only
            assert r["rate_bps_at_decision"] == traces[r["episode"]].rate_at(r["sim_time_s"])
            assert set(r) == set(ROW_FIELDS)
    starts = [[(r["trace"], r["rate_bps_at_decision"], r["load"], r["oracle_latency_s"]) for r in rows
               if r["step"] == 0] for rows in (first, other)]
    assert starts[0] == starts[1]
    # local takes 100 ms per request, so its requests are at 0, 0.1, 0.2, ... s of every trace
    np.testing.assert_allclose([r["sim_time_s"] for r in first if r["episode"] == 0][:5], [0, 0.1, 0.2, 0.3, 0.4],
                               atol=1e-12)


def test_rollout_needs_an_eval_env_and_its_own_oracle():
    with pytest.raises(DynsplitError, match="mode 'eval'"):
        rollout(tiny_env([constant_trace(1e6)], mode="train"), FixedPolicy(0))
    env = tiny_env([constant_trace(1e6)])
    with pytest.raises(DynsplitError, match="bound to another env"):
        rollout(env, OraclePolicy(tiny_env([constant_trace(1e6)])))
    with pytest.raises(DynsplitError, match="episodes"):
        rollout(env, FixedPolicy(0), episodes=0)


# --------------------------------------------------------------------------------------------------- summary
def _rows_of(policies_and_seeds):
    rows = []
    for make, seed in policies_and_seeds:
        env = tiny_env(_traces())
        rows += rollout(env, make(env), seed=seed)
    return rows


def test_summary_fields_are_present_and_sane():
    rows = _rows_of([(ArgminPolicy, 0), (OraclePolicy, 0), (lambda e: FixedPolicy(MID, "mid"), 0),
                     (lambda e: RandomPolicy(3, seed=0), 0), (lambda e: RandomPolicy(3, seed=1), 1)])
    summary = summarize(rows, ACTIONS)
    pol = summary["policies"]
    assert list(pol) == ["argmin", "oracle", "mid", "random"]
    assert summary["bootstrap"]["units"] == 3 and summary["bootstrap"]["unit"] == "episode"
    for name, s in pol.items():
        lo, hi = s["mean_latency_ci95"]
        assert lo <= s["mean_latency_s"] <= hi, name
        assert s["p50_latency_s"] <= s["p95_latency_s"] <= s["p99_latency_s"]
        assert sum(s["action_counts"].values()) == s["requests"] == sum(r["policy"] == name for r in rows)
        assert s["mean_regret_s"] >= 0 and s["failed"] == 0 and s["episodes"] == 3
        for key in ("gap_closure", "gap_closure_ci95", "ratio_to_argmin", "ratio_to_oracle", "per_seed"):
            assert key in s
    assert pol["argmin"]["gap_closure"] == pytest.approx(0.0) and pol["argmin"]["gap_closure_ci95"] == [0.0, 0.0]
    assert pol["oracle"]["gap_closure"] == pytest.approx(1.0) and pol["oracle"]["gap_closure_ci95"] == [1.0, 1.0]
    assert pol["oracle"]["mean_regret_s"] == 0.0 and pol["oracle"]["ratio_to_oracle"] == 1.0
    assert pol["argmin"]["ratio_to_argmin"] == 1.0
    a, o = pol["argmin"]["mean_latency_s"], pol["oracle"]["mean_latency_s"]
    assert o < a and summary["argmin_oracle_gap"] == pytest.approx((a - o) / o)
    assert pol["mid"]["action_counts"] == {"offload": 0, "mid": pol["mid"]["requests"], "local": 0}
    # two seeds of random are pooled, and reported one by one
    assert set(pol["random"]["per_seed"]) == {"0", "1"}
    assert 0.0 < summary["oracle_switch_fraction"] < 1.0
    json.dumps(summary)  # plain JSON types only


def test_oracle_switch_fraction_counts_changes_within_episodes():
    rows = [{"policy": "oracle", "seed": 0, "episode": e, "oracle_action": a, "action": a, "latency_s": 1.0,
             "regret_s": 0.0, "failed": False, "sim_time_s": float(i), "oracle_latency_s": 1.0}
            for e, actions in enumerate([[0, 0, 1, 1], [2, 2, 2]]) for i, a in enumerate(actions)]
    assert summarize(rows, ACTIONS)["oracle_switch_fraction"] == pytest.approx(1 / 5)


def test_bootstrap_resamples_whole_episodes_not_requests():
    # Episode 0: every request takes 1 s; episode 1: 3 s. A request-level bootstrap would give a narrow
    # interval around 2 s; resampling the two episodes gives [1, 3] (both-from-one-episode draws).
    rows = [{"policy": "p", "seed": 0, "episode": e, "step": i, "latency_s": lat, "action": 0, "regret_s": 0.0,
             "failed": False, "sim_time_s": float(i), "oracle_action": 0, "oracle_latency_s": lat}
            for e, lat in enumerate([1.0, 3.0]) for i in range(50)]
    summary = summarize(rows, ACTIONS)
    assert summary["policies"]["p"]["mean_latency_s"] == pytest.approx(2.0)
    assert summary["policies"]["p"]["mean_latency_ci95"] == pytest.approx([1.0, 3.0])
    assert summary == summarize(rows, ACTIONS)  # fixed seed: reproducible
    blocks = summarize(rows, ACTIONS, block_s=10.0)
    assert blocks["bootstrap"]["units"] == 10 and blocks["bootstrap"]["unit"] == "block"
    lo, hi = blocks["policies"]["p"]["mean_latency_ci95"]
    assert 1.0 < lo < 2.0 < hi < 3.0
    one = summarize([r for r in rows if r["episode"] == 0], ACTIONS)
    assert one["policies"]["p"]["mean_latency_ci95"] is None  # one unit: no interval


def test_gap_closure_is_none_when_argmin_equals_the_oracle():
    rows = []
    for make in (ArgminPolicy, OraclePolicy):
        env = tiny_env([constant_trace(10e6)])
        rows += rollout(env, make(env))
    pol = summarize(rows, ACTIONS)["policies"]
    assert pol["argmin"]["gap_closure"] is None and pol["oracle"]["gap_closure_ci95"] is None


# ----------------------------------------------------------------------------------------- evaluate_policies
def test_evaluate_policies_uses_fresh_identical_envs():
    kwargs = {k: v for k, v in tiny_env_kwargs(_traces()).items() if k != "mode"}
    train = {**kwargs, "channel": [constant_trace(10e6)]}
    rows, summary = evaluate_policies(kwargs, ["argmin", "static", "oracle", "random", "local"],
                                      train_env_kwargs=train, seeds=[0, 1])
    pol = summary["policies"]
    assert list(pol) == ["argmin", "static", "oracle", "random", "local"]
    assert set(pol["random"]["per_seed"]) == {"0", "1"} and set(pol["argmin"]["per_seed"]) == {"0"}
    assert summary["policy_info"]["static"]["action"] == "mid"
    assert summary["action_names"] == ACTIONS and summary["episodes"] == 3 and summary["model"] == "tiny"
    assert pol["static"]["action_counts"]["mid"] == pol["static"]["requests"]
    local = [r for r in rows if r["policy"] == "local"]
    assert local == rollout(tiny_env(_traces()), FixedPolicy(LOCAL, "local"), seed=0)
    with pytest.raises(DynsplitError, match="unknown policy 'orcale'"):
        evaluate_policies(kwargs, ["argmin", "orcale"])


def test_agent_paths_are_seeds_of_one_policy(monkeypatch):
    factory = pytest.importorskip("dynsplit.agents.factory")

    class Model:
        def __init__(self, action):
            self.action = action

        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return np.array(self.action), state

    monkeypatch.setattr(factory, "load_agent", lambda algo, path, env: Model({"a.zip": MID, "b.zip": LOCAL}[path]))
    monkeypatch.setattr(factory, "observation_kwargs_of", lambda path: {})
    kwargs = {k: v for k, v in tiny_env_kwargs(_traces()).items() if k != "mode"}
    rows, summary = evaluate_policies(kwargs, ["ppo=a.zip;b.zip"])
    ppo = summary["policies"]["ppo"]
    assert set(ppo["per_seed"]) == {"0", "1"} and ppo["per_seed"]["1"] == pytest.approx(0.1)
    assert ppo["action_counts"]["mid"] > 0 and ppo["action_counts"]["local"] > 0
    assert summary["policy_info"]["ppo"] == {"algo": "ppo", "paths": ["a.zip", "b.zip"]}


# -------------------------------------------------------------------------------------------- run_evaluate
def _parse(argv):
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    return parser.parse_args(argv)


def test_run_evaluate_writes_the_run_folder_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_evaluate(_parse(["-o", str(out), "--max-eval-requests", "50"])) == 0
    results = json.loads((out / "results.json").read_text())
    for key in ("model", "profile", "codec", "channel", "load", "env_kwargs", "seeds", "episodes", "action_names",
                "policies", "oracle_switch_fraction", "argmin_oracle_gap"):
        assert key in results, key
    assert results["env_kwargs"] == {"max_eval_requests": 50}
    assert list(results["policies"]) == ["argmin", "argmin-fast", "argmin-harmonic", "static", "local", "offload",
                                         "random", "oracle"]
    for stats in results["policies"].values():
        for key in ("mean_latency_s", "mean_latency_ci95", "p50_latency_s", "p95_latency_s", "p99_latency_s",
                    "mean_regret_s", "gap_closure", "requests", "action_counts"):
            assert key in stats
        assert stats["requests"] == 100  # 2 traces x 50 requests
    with open(out / "requests.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 800 and list(table[0]) == list(ROW_FIELDS)  # 8 baselines x 2 traces x 50
    summary_md = (out / "summary.md").read_text()
    assert "| policy | mean ms" in summary_md and "| oracle |" in summary_md
    assert "| argmin |" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(DynsplitError, match="already holds results.json"):
        run_evaluate(_parse(["-o", str(out), "--max-eval-requests", "50"]))
    assert run_evaluate(_parse(["-o", str(out), "--max-eval-requests", "20", "--policies", "argmin,oracle",
                                "--overwrite"])) == 0
    assert list(json.loads((out / "results.json").read_text())["policies"]) == ["argmin", "oracle"]


def test_env_options_and_env_kwargs(tmp_path):
    out = tmp_path / "run"
    args = _parse(["-o", str(out), "--policies", "local", "--policies", "oracle", "--max-eval-requests", "10",
                   "--load", "0.3", "--env-kwarg", "rtt_s=0.02", "--env-kwarg", "observe_estimates=false",
                   "--history", "4"])
    assert run_evaluate(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["env_kwargs"] == {"max_eval_requests": 10, "load": 0.3, "rtt_s": 0.02,
                                     "observe_estimates": False, "history": 4}
    assert results["load"] == 0.3 and list(results["policies"]) == ["local", "oracle"]
    with pytest.raises(DynsplitError, match=r"unknown env argument 'rtt'.*did you mean 'rtt_s'"):
        run_evaluate(_parse(["-o", str(tmp_path / "x"), "--env-kwarg", "rtt=0.02"]))
    with pytest.raises(DynsplitError, match="set by evaluate"):
        run_evaluate(_parse(["-o", str(tmp_path / "x"), "--env-kwarg", "mode=train"]))
    with pytest.raises(DynsplitError, match="both as --history and --env-kwarg"):
        run_evaluate(_parse(["-o", str(tmp_path / "x"), "--history", "3", "--env-kwarg", "history=4"]))
    with pytest.raises(DynsplitError, match="unknown policy 'argmn'"):
        run_evaluate(_parse(["-o", str(tmp_path / "x"), "--policies", "argmn"]))
    assert not (tmp_path / "x" / "results.json").exists()


def test_argmin_fast_reads_its_own_observation_on_the_same_requests():
    import gymnasium as gym

    from dynsplit.agents.baselines import make_policy
    from dynsplit.envs import ENV_ID

    rows, summary = evaluate_policies({"max_eval_requests": 30}, ["argmin", "argmin-fast"])
    firsts = {r["policy"]: r for r in rows if r["step"] == 0 and r["episode"] == 0}
    assert firsts["argmin"]["oracle_latency_s"] == firsts["argmin-fast"]["oracle_latency_s"]
    assert summary["policies"]["argmin-fast"]["requests"] > 0
    with pytest.raises(DynsplitError, match="argmin-fast reads 0.1 s rate bins"):
        make_policy("argmin-fast", gym.make(ENV_ID, mode="eval"))
