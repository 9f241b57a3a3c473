"""Baseline policies on a tiny hand-written profile, where the right answer can be computed by hand.

The profile (codec ``raw``, one batch size, load 0, rtt 10 ms):

=========  ===========  ===========  ===========  ===================================
action     bytes        device       server       latency at rate R (s)
=========  ===========  ===========  ===========  ===================================
offload    100 000      0            10 ms        0.020 + 800 000 / R
mid         10 000      20 ms         5 ms        0.035 +  80 000 / R
local            0      100 ms        0           0.100
=========  ===========  ===========  ===========  ===================================

so offload wins at 100 Mbit/s (28 ms), mid at 10 Mbit/s (43 ms), local at 1 Mbit/s (100 ms).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dynsplit
from dynsplit.agents.baselines import (
    BASELINE_NAMES,
    AgentPolicy,
    ArgminHarmonicPolicy,
    ArgminPolicy,
    FixedPolicy,
    OraclePolicy,
    RandomPolicy,
    StaticPolicy,
    default_train_env_kwargs,
    make_policy,
    parse_policy_specs,
)
from dynsplit.agents.evaluation import rollout
from dynsplit.envs import synthetic
from dynsplit.envs.dynamic_split import DynamicSplitEnv
from dynsplit.envs.load_traces import constant_load
from dynsplit.envs.traces import ChannelTrace
from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.profile import CandidateProfile, Profile

OFFLOAD, MID, LOCAL = 0, 1, 2


def _candidate(index, name, kind, nbytes, device_s, server_s):
    return CandidateProfile(
        index=index, name=name, kind=kind, node=None if kind != "split" else name,
        shape=(1, 10) if kind != "local" else (), dtype="float32", elements=nbytes,
        bytes={"raw": nbytes}, device_head_s=device_s, device_encode_s={"raw": 0.0},
        server_decode_s={"raw": 0.0}, server_tail_s={1: server_s},
    )


def tiny_profile() -> Profile:
    """offload / one split ``mid`` / local with round numbers (see the module docstring)."""
    return Profile(
        model="tiny", input_shape=(1, 3, 8, 8), compressive_only=True, codecs=("raw",), batch_sizes=(1,),
        candidates=(_candidate(0, "offload", "offload", 100_000, 0.0, 0.010),
                    _candidate(1, "mid", "split", 10_000, 0.020, 0.005),
                    _candidate(2, "local", "local", 0, 0.100, 0.0)),
    )


def hand_latencies(rate_bps: float) -> np.ndarray:
    """Latency (s) of offload, mid, local at a constant rate, computed by hand."""
    return np.array([0.020 + 800_000 / rate_bps, 0.035 + 80_000 / rate_bps, 0.100])


def tiny_env_kwargs(channel, **extra) -> dict:
    """``gymnasium.make`` kwargs of an eval env on the tiny profile, ``channel`` (traces), load 0."""
    return {"profile": tiny_profile(), "channel": list(channel), "load": [constant_load(0.0)], "rate_scale": 1.0,
            "codec": "raw", "mode": "eval", **extra}


def tiny_env(channel, **extra) -> gym.Env:
    return gym.make(dynsplit.ENV_ID, **tiny_env_kwargs(channel, **extra))


def constant_trace(rate_bps: float, duration_s: float = 10.0) -> ChannelTrace:
    return ChannelTrace([duration_s], [rate_bps], f"constant-{rate_bps:g}")


def encode_rates(rates_bps) -> np.ndarray:
    """The observation's encoding of rates (``log10(R / 1 Mbit/s) / 3``)."""
    return (np.log10(np.asarray(rates_bps, dtype=np.float64) / 1e6) / 3.0).astype(np.float32)


# --------------------------------------------------------------------------------------- analytic policies
@pytest.mark.parametrize(("rate_bps", "best"), [(100e6, OFFLOAD), (10e6, MID), (1e6, LOCAL)])
def test_argmin_picks_the_hand_computed_action_and_is_exact_on_a_constant_rate(rate_bps, best):
    assert int(np.argmin(hand_latencies(rate_bps))) == best
    env = tiny_env([constant_trace(rate_bps)])
    np.testing.assert_allclose(env.unwrapped.latency_model.estimate(rate_bps, 0.0), hand_latencies(rate_bps))
    rows = rollout(env, ArgminPolicy(env))
    assert len(rows) > 50
    for row in rows:
        assert row["action"] == best == row["oracle_action"]
        assert row["latency_s"] == pytest.approx(hand_latencies(rate_bps)[best], rel=1e-9)
        assert row["latency_s"] == pytest.approx(row["oracle_latency_s"], rel=1e-12)
        assert row["regret_s"] == pytest.approx(0.0, abs=1e-12)


def test_argmin_follows_the_last_rate_bin_on_a_step_channel():
    rates = (100e6, 10e6, 1e6)
    trace = synthetic.steps(rates, step_s=4.0)
    env = tiny_env([trace])
    rows = rollout(env, ArgminPolicy(env))
    checked = 0
    for row in rows:
        t = row["sim_time_s"]
        seg_now, seg_before = int(t % 12.0 // 4.0), int((t - 1.0) % 12.0 // 4.0)
        if t >= 1.0 and seg_now == seg_before:  # the last 1 s bin lies inside one segment
            assert row["action"] == int(np.argmin(hand_latencies(rates[seg_now]))), row
            checked += 1
    assert checked > 0.5 * len(rows)
    # Right after a step the held rate is stale: argmin loses something to the oracle there.
    assert sum(r["regret_s"] for r in rows) > 0


def test_oracle_is_never_worse_than_any_policy_on_any_request():
    trace = synthetic.steps((100e6, 3e6, 20e6, 0.5e6), step_s=1.5)
    for policy_factory in (lambda e: FixedPolicy(OFFLOAD), lambda e: FixedPolicy(MID), lambda e: FixedPolicy(LOCAL),
                           ArgminPolicy, ArgminHarmonicPolicy, lambda e: RandomPolicy(3, seed=1)):
        env = tiny_env([trace])
        rows = rollout(env, policy_factory(env))
        for row in rows:
            assert row["oracle_latency_s"] <= row["latency_s"] + 1e-12
            assert row["regret_s"] >= -1e-12
    env = tiny_env([trace])
    for row in rollout(env, OraclePolicy(env)):
        assert row["action"] == row["oracle_action"]
        assert row["latency_s"] == row["oracle_latency_s"]


def test_harmonic_mean_of_the_last_five_bins():
    env = tiny_env([constant_trace(10e6)])
    obs, _ = env.reset()
    layout = env.unwrapped.obs_layout
    obs[layout["rates"]] = encode_rates([50e6, 50e6, 50e6, 1e6, 2e6, 4e6, 4e6, 8e6])
    expected = 5.0 / (1 / 1e6 + 1 / 2e6 + 1 / 4e6 + 1 / 4e6 + 1 / 8e6)  # 2.353 Mbit/s
    assert ArgminHarmonicPolicy(env).rate_estimate_bps(obs) == pytest.approx(expected, rel=1e-5)
    assert ArgminPolicy(env).rate_estimate_bps(obs) == pytest.approx(8e6, rel=1e-5)
    # One fast bin after slow ones: argmin offloads, the harmonic mean stays cautious (local).
    obs[layout["rates"]] = encode_rates([0.5e6] * 7 + [100e6])
    assert int(ArgminPolicy(env).predict(obs)[0]) == OFFLOAD
    assert int(ArgminHarmonicPolicy(env).predict(obs)[0]) == LOCAL
    # A history shorter than five bins: all of them.
    short = tiny_env([constant_trace(10e6)], history=3)
    obs, _ = short.reset()
    obs[short.unwrapped.obs_layout["rates"]] = encode_rates([1e6, 2e6, 4e6])
    assert ArgminHarmonicPolicy(short).rate_estimate_bps(obs) == pytest.approx(3 / 1.75 * 1e6, rel=1e-5)


def test_predict_accepts_one_observation_or_a_batch():
    env = tiny_env([constant_trace(10e6)])
    obs, _ = env.reset()
    batch = np.stack([obs] * 4)
    for policy in (ArgminPolicy(env), ArgminHarmonicPolicy(env), FixedPolicy(LOCAL), RandomPolicy(3)):
        action, state = policy.predict(obs)
        assert action.shape == () and action.dtype == np.int64 and state is None
        actions, _ = policy.predict(batch)
        assert actions.shape == (4,)
    np.testing.assert_array_equal(ArgminPolicy(env).predict(batch)[0], [MID] * 4)
    assert OraclePolicy(env).predict(obs)[0] == MID
    with pytest.raises(DynsplitError, match="one request"):
        OraclePolicy(env).predict(batch)
    with pytest.raises(DynsplitError, match="entries, expected"):
        ArgminPolicy(env).predict(obs[:-1])


def test_random_policy_is_seeded():
    first = RandomPolicy(3, seed=4).predict(np.zeros((50, 2)))[0]
    again = RandomPolicy(3, seed=4).predict(np.zeros((50, 2)))[0]
    other = RandomPolicy(3, seed=5).predict(np.zeros((50, 2)))[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and set(first.tolist()) == {0, 1, 2}


# ------------------------------------------------------------------------------------------------- static
def test_static_picks_the_best_fixed_action_on_the_training_traces():
    # Trained at 10 Mbit/s (mid wins), evaluated at 100 Mbit/s (offload would win): static keeps mid.
    train = {k: v for k, v in tiny_env_kwargs([constant_trace(10e6)]).items() if k != "mode"}
    env = tiny_env([constant_trace(100e6)])
    policy = make_policy("static", env, train_env_kwargs=train)
    assert isinstance(policy, StaticPolicy) and policy.name == "static"
    assert policy.action == MID and policy.action_name == "mid"
    expected = dict(zip(["offload", "mid", "local"], hand_latencies(10e6), strict=True))
    assert policy.means_s == pytest.approx(expected, rel=1e-9)
    assert {row["action"] for row in rollout(env, policy)} == {MID}


def test_static_pools_requests_over_the_training_traces():
    # 2 s at 100 Mbit/s, then 8 s at 0.25 Mbit/s. The mean is over requests, and fast actions issue more
    # requests while the channel is fast, but here the slow stretch dominates: local is the best fixed action.
    trace = synthetic.steps((100e6, 0.25e6, 0.25e6, 0.25e6, 0.25e6), 2.0)
    train = {k: v for k, v in tiny_env_kwargs([trace, constant_trace(0.25e6)]).items() if k != "mode"}
    policy = StaticPolicy(train)
    assert policy.action_name == "local"
    assert policy.means_s["local"] == pytest.approx(0.1)
    # Each mean is that of the action played alone through all the training traces (both walked whole).
    env = tiny_env([trace, constant_trace(0.25e6)])
    for action, name in enumerate(["offload", "mid", "local"]):
        rows = rollout(env, FixedPolicy(action))
        assert policy.means_s[name] == pytest.approx(np.mean([r["latency_s"] for r in rows]), rel=1e-12)


def test_static_defaults_to_the_envs_kwargs_without_its_channel():
    env = tiny_env([constant_trace(10e6)], max_eval_requests=5)
    train = default_train_env_kwargs(env)
    assert "channel" not in train and "mode" not in train and "max_eval_requests" not in train
    assert train["profile"].model == "tiny"
    with pytest.raises(DynsplitError, match="train_env_kwargs"):
        make_policy("static", DynamicSplitEnv(**tiny_env_kwargs([constant_trace(10e6)])))


def test_static_refuses_an_env_with_other_actions():
    train = {k: v for k, v in tiny_env_kwargs([constant_trace(10e6)]).items() if k != "mode"}
    fitted = StaticPolicy(train)
    other = gym.make(dynsplit.ENV_ID, mode="eval", max_eval_requests=5)  # the bundled profile
    with pytest.raises(DynsplitError, match="fitted on actions"):
        make_policy("static", other, static=fitted)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_builds_every_baseline():
    env = tiny_env([constant_trace(10e6)])
    train = {k: v for k, v in tiny_env_kwargs([constant_trace(10e6)]).items() if k != "mode"}
    for name in BASELINE_NAMES:
        policy_env = env if name != "argmin-fast" else tiny_env([constant_trace(10e6)], history_bin_s=0.1)
        policy = make_policy(name, policy_env, train_env_kwargs=train, seed=3)
        assert policy.name == name
        rows = rollout(policy_env, policy, episodes=1)
        assert rows and all(r["policy"] == name for r in rows)
    assert make_policy("local", env).action == LOCAL and make_policy("offload", env).action == OFFLOAD
    assert make_policy("random", env, seed=3).seed == 3


def test_unknown_policy_names_are_one_line_errors_with_a_suggestion():
    env = tiny_env([constant_trace(10e6)])
    with pytest.raises(DynsplitError, match=r"unknown policy 'argmn' \(did you mean 'argmin'\?\); expected one of "
                                            r"argmin, argmin-fast, argmin-harmonic, static"):
        make_policy("argmn", env)
    with pytest.raises(DynsplitError, match=r"unknown agent 'pp0'.*did you mean 'ppo'"):
        make_policy("pp0=model.zip", env)
    with pytest.raises(DynsplitError, match="malformed"):
        make_policy("ppo=", env)
    with pytest.raises(DynsplitError, match="listed twice"):
        parse_policy_specs(["argmin", "oracle", "argmin"])


def test_agent_entries_with_one_name_are_seeds_of_one_policy():
    specs = parse_policy_specs(["argmin", "ppo=a.zip", "ppo=b.zip;c.zip", "ppo[noest]=d.zip", "dqn=e.zip"])
    assert [(s.name, s.algo, s.paths) for s in specs] == [
        ("argmin", None, ()), ("ppo", "ppo", ("a.zip", "b.zip", "c.zip")), ("ppo[noest]", "ppo", ("d.zip",)),
        ("dqn", "dqn", ("e.zip",))]


def test_agent_adapter_passes_predict_through():
    class Model:
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            self.deterministic = deterministic
            return np.array(MID), state

    model = Model()
    policy = AgentPolicy(model, "ppo", seed=2, path="x.zip")
    env = tiny_env([constant_trace(10e6)], max_eval_requests=5)
    rows = rollout(env, policy, episodes=1, deterministic=False)
    assert [r["action"] for r in rows] == [MID] * 5 and {r["seed"] for r in rows} == {2}
    assert model.deterministic is False and policy.info == {"path": "x.zip"}


def test_make_policy_loads_a_saved_sb3_agent(tmp_path):
    pytest.importorskip("dynsplit.agents.factory")
    from stable_baselines3 import PPO

    env = tiny_env([constant_trace(10e6)], max_eval_requests=20)
    path = tmp_path / "model.zip"
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu").save(path)
    policy = make_policy(f"ppo={path}", env, seed=1)
    assert policy.name == "ppo" and policy.seed == 1
    rows = rollout(env, policy, episodes=1)
    assert len(rows) == 20 and all(0 <= r["action"] < 3 for r in rows)
    wrong = gym.make(dynsplit.ENV_ID, mode="eval", max_eval_requests=5)  # 8 actions, not 3
    with pytest.raises(DynsplitError):
        make_policy(f"ppo={path}", wrong)
    with pytest.raises(DynsplitError):
        make_policy(f"ppo={tmp_path / 'missing.zip'}", env)
