"""The environment through gymnasium.make: API checks, determinism, the oracle, the live backend."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import dynsplit
from dynsplit.envs.dynamic_split import DynamicSplitEnv
from dynsplit.envs.load_traces import constant_load
from dynsplit.envs.traces import ChannelTrace
from dynsplit.splitting.errors import DynsplitError

FAST = {"episode_requests": 50, "max_eval_requests": 50}


def _make(**kwargs):
    return gym.make(dynsplit.ENV_ID, **kwargs)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gymnasium_check_env_without_warnings(mode):
    from gymnasium.utils.env_checker import check_env

    env = _make(mode=mode, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sb3_check_env_without_warnings(mode):
    from stable_baselines3.common.env_checker import check_env

    env = DynamicSplitEnv(mode=mode, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)


def _episode(env, seed, actions_seed=1):
    rng = np.random.default_rng(actions_seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        out += [obs, reward, info["latency_s"], info["oracle_action"], info["trace"]]
        done = term or trunc
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


def test_same_seed_same_episode_and_different_seed_differs():
    first = _episode(_make(**FAST), seed=7)
    second = _episode(_make(**FAST), seed=7)
    _same(first, second)
    third = _episode(_make(**FAST), seed=8)
    assert first[5] != third[5] or not np.array_equal(first[0], third[0])


def test_eval_mode_walks_traces_in_order_from_start():
    env = _make(mode="eval", max_eval_requests=5)
    names = [t.name for t in env.unwrapped.channels]
    seen = []
    for _ in range(len(names) + 1):
        _, info = env.reset()
        seen.append(info["trace"])
        assert env.unwrapped.sim_time_s == 0.0
    assert seen == names + names[:1]


def test_eval_episode_terminates_after_walking_the_trace():
    trace = ChannelTrace(np.array([1.0, 1.0]), np.array([8e6, 2e6]), name="two-seconds")
    env = _make(mode="eval", channel=[trace], load=[constant_load(0.0)], rate_scale=1.0)
    env.reset()
    steps, done, info = 0, False, {}
    while not done:
        _, _, term, trunc, info = env.step(0)
        steps += 1
        done = term or trunc
    assert term and not trunc
    assert info["sim_time_s"] + info["latency_s"] >= 2.0 > info["sim_time_s"]


def test_oracle_is_never_worse_than_any_action():
    env = _make(**FAST).unwrapped
    env.reset(seed=3)
    for _ in range(200):
        exact = env.exact_latencies()
        action = int(env.np_random.integers(env.n_actions))
        _, _, term, trunc, info = env.step(action)
        assert info["oracle_latency_s"] <= info["latency_s"] + 1e-12
        assert info["latency_s"] == pytest.approx(exact[action], rel=1e-12)
        assert info["oracle_latency_s"] == pytest.approx(exact.min(), rel=1e-12)
        if term or trunc:
            env.reset()


def test_info_and_reward_follow_the_latency_model():
    env = _make(**FAST).unwrapped
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.n_actions - 1)  # local: device time only
    assert info["action_name"] == "local"
    assert info["bytes"] == 0 and info["transfer_s"] == 0 and info["server_s"] == 0
    assert info["latency_s"] == pytest.approx(env.latency_model.local_latency_s)
    assert reward == pytest.approx(-1.0)
    _, reward, _, _, info = env.step(0)  # offload: sends the uint8 input
    parts = info["device_s"] + info["transfer_s"] + info["server_s"] + env.latency_model.config.rtt_s
    assert info["latency_s"] == pytest.approx(parts)
    assert info["bytes"] > np.prod(env.profile.input_shape)
    for key in ("rate_bps_at_decision", "load", "oracle_action", "sim_time_s", "regret_s", "trace"):
        assert key in info


def test_observation_uses_only_the_past():
    """Changing the trace after the decision time leaves the observation unchanged."""
    rates = np.full(100, 4e6)
    base = ChannelTrace(np.full(100, 0.5), rates, name="flat")
    altered_rates = rates.copy()
    altered_rates[40:] = 1e5  # after t = 20 s
    altered = ChannelTrace(np.full(100, 0.5), altered_rates, name="flat")
    obs = []
    for trace in (base, altered):
        env = _make(mode="eval", channel=[trace], load=[constant_load(0.2)], rate_scale=1.0).unwrapped
        env.reset()
        env._t = 19.0  # decision at 19 s: bins end at 19 s
        obs.append(env._observation())
    np.testing.assert_array_equal(obs[0], obs[1])


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(DynsplitError, match="unknown mode 'evl'.*did you mean 'eval'"):
        _make(mode="evl")
    with pytest.raises(DynsplitError, match="backend"):
        _make(backend="lve")
    with pytest.raises(DynsplitError, match="codec 'int4'"):
        _make(codec="int4")
    with pytest.raises(DynsplitError, match="no bundled profile for model 'resnet18'"):
        _make(model="resnet18")
    with pytest.raises(DynsplitError, match="mahimahi"):
        _make(channel="mahimahi-lte-upp")
    env = _make(**FAST)
    env.reset(seed=0)
    with pytest.raises(DynsplitError, match="outside the action space"):
        env.unwrapped.step(99)


def test_profile_for_another_model_is_rejected(tmp_path):
    from dynsplit.envs.profiles import bundled_profiles_dir

    path = bundled_profiles_dir() / "mobilenet_v3_large.json"
    with pytest.raises(DynsplitError, match="is for model 'mobilenet_v3_large', not 'resnet50'"):
        _make(profile=str(path), model="resnet50")


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory):
    from dynsplit.splitting.graph import split_graph_for
    from dynsplit.splitting.profiler import ProfilerOptions, profile_graph

    graph = split_graph_for("mobilenet_v3_small", input_shape=(1, 3, 64, 64))
    profile = profile_graph(graph, ProfilerOptions(repeats=1, warmup=0, batch_sizes=(1, 2)))
    path = tmp_path_factory.mktemp("profiles") / "mobilenet_v3_small.json"
    profile.save(path)
    return path


def test_live_backend_really_runs_heads_and_tails(small_profile):
    env = _make(profile=str(small_profile), backend="live", codec="int8", episode_requests=10)
    env.reset(seed=0)
    n = env.action_space.n
    for action in range(n):
        _, reward, _, _, info = env.step(action)
        assert info["latency_s"] > 0 and reward < 0
        assert "profiled_latency_s" in info
        if info["action_name"] != "local":
            assert info["server_s"] > 0 and info["bytes"] > 0
        else:
            assert info["bytes"] == 0


def test_regret_reward_is_latency_reward_minus_the_oracle():
    env_lat = _make(**FAST).unwrapped
    env_reg = _make(reward="regret", **FAST).unwrapped
    env_lat.reset(seed=4)
    env_reg.reset(seed=4)
    for action in [0, 3, 7, 2, 5]:
        _, r_lat, _, _, info = env_lat.step(action)
        _, r_reg, _, _, _ = env_reg.step(action)
        assert r_reg == pytest.approx(r_lat + info["oracle_latency_s"] / env_lat.t_ref_s)
        assert r_reg <= 1e-12
    with pytest.raises(DynsplitError, match="unknown reward"):
        _make(reward="regrets")


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("dynsplit.envs.dynamic_split", ("stable_baselines3", "dynsplit.agents", "dynsplit.experiments", "torch")),
        ("dynsplit.agents.baselines", ("dynsplit.experiments",)),
        ("dynsplit.agents.factory", ("dynsplit.experiments",)),
    ],
)
def test_layering(module, forbidden):
    """Imports flow one way: splitting <- envs <- agents <- experiments (and the profiled env needs no torch)."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_live_backend_reads_an_image_folder(small_profile, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    env = _make(profile=str(small_profile), backend="live", live_options={"images_dir": str(tmp_path)})
    env.reset(seed=0)
    assert tuple(env.unwrapped.backend.images.shape) == (3, 3, 64, 64)
    _, _, _, _, info = env.step(1)
    assert info["latency_s"] > 0
    with pytest.raises(DynsplitError, match="does not exist"):
        _make(profile=str(small_profile), backend="live", live_options={"images_dir": str(tmp_path / "none")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DynsplitError, match="holds no"):
        _make(profile=str(small_profile), backend="live", live_options={"images_dir": str(tmp_path / "empty")})


def test_duration_weighted_trace_sampling():
    short = ChannelTrace(np.array([1.0]), np.array([1e6]), name="short")
    long = ChannelTrace(np.array([99.0]), np.array([1e6]), name="long")
    names = {"uniform": [], "duration": []}
    for sampling in names:
        env = _make(channel=[short, long], load=[constant_load(0.0)], trace_sampling=sampling, episode_requests=1)
        env.reset(seed=0)
        names[sampling] = [env.reset()[1]["trace"] for _ in range(400)]
    assert 150 < names["uniform"].count("short") < 250
    assert names["duration"].count("short") < 20
    with pytest.raises(DynsplitError, match="trace_sampling"):
        _make(trace_sampling="length")
