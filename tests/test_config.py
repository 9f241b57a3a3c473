"""Hyperparameter files and ``key:value`` overrides (dynsplit.experiments.config)."""

from __future__ import annotations

import pytest

from dynsplit.experiments.config import apply_overrides, load_hyperparams, read_config, save_config
from dynsplit.splitting.errors import DynsplitError


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_bundled_defaults_load(algo):
    hp = load_hyperparams(algo)
    assert hp["policy"] == "MlpPolicy"
    assert isinstance(hp["n_timesteps"], int) and hp["n_timesteps"] > 0
    assert isinstance(hp["n_envs"], int) and hp["n_envs"] >= 1
    assert 0.0 <= hp["gamma"] <= 0.5  # immediate per-request reward: a small discount
    assert isinstance(hp["learning_rate"], float)
    assert isinstance(hp["env_kwargs"], dict)
    assert hp["policy_kwargs"]["net_arch"] == [64, 64]


def test_overrides_parse_yaml_values():
    hp = load_hyperparams("ppo", overrides=["learning_rate:1e-4", "n_steps:128", "ent_coef:0.0",
                                            "policy_kwargs.net_arch:[128, 128]", "n_timesteps:2e3"])
    assert hp["learning_rate"] == pytest.approx(1e-4) and isinstance(hp["learning_rate"], float)
    assert hp["n_steps"] == 128
    assert hp["ent_coef"] == 0.0
    assert hp["policy_kwargs"] == {"net_arch": [128, 128], "activation_fn": "tanh"}  # merged, not replaced
    assert hp["n_timesteps"] == 2000 and isinstance(hp["n_timesteps"], int)


def test_nested_env_kwargs_overrides():
    hp = load_hyperparams("dqn", overrides=["env_kwargs.codec:float16", "env_kwargs.episode_requests:64",
                                            "env_kwargs.live_options.device_threads:1"])
    assert hp["env_kwargs"]["codec"] == "float16"
    assert hp["env_kwargs"]["episode_requests"] == 64
    assert hp["env_kwargs"]["live_options"] == {"device_threads": 1}
    assert hp["env_kwargs"]["channel"] == "mahimahi-lte-up-train"  # the rest of the bundled env_kwargs kept


def test_overrides_do_not_touch_the_input():
    base = {"gamma": 0.3, "env_kwargs": {"codec": "int8"}}
    out = apply_overrides(base, ["env_kwargs.codec:raw"])
    assert base["env_kwargs"]["codec"] == "int8" and out["env_kwargs"]["codec"] == "raw"


@pytest.mark.parametrize("override, match", [
    ("leaning_rate:1e-4", r"unknown hyperparameter 'leaning_rate' for ppo .*did you mean 'learning_rate'"),
    ("buffer_size:1000", r"unknown hyperparameter 'buffer_size' for ppo"),  # a DQN argument
    ("n_env:2", r"did you mean 'n_envs'"),  # our own keys are known too
    ("env_kwargs.codek:int8", r"unknown env_kwargs key 'codek'.*did you mean 'codec'"),
    ("policy_kwargs.net_arc:[32]", r"unknown policy_kwargs key 'net_arc'.*did you mean 'net_arch'"),
    ("policy_kwargs.activation_fn:tanhh", r"activation_fn 'tanhh'.*did you mean 'tanh'"),
    ("learning_rate:fast", r"learning_rate .* must be a number or 'lin_<number>'"),
    ("n_envs:0", r"n_envs .* must be a positive integer"),
    ("gamma", r"override 'gamma' is not key:value"),
    ("policy_kwargs.net_arch:[64,", r"value '\[64,' is not valid YAML"),
    ("gamma.x:1", r"'gamma' is 0.3, not a mapping"),
])
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(DynsplitError, match=match):
        load_hyperparams("ppo", overrides=[override])


def test_linear_schedule_is_accepted():
    hp = load_hyperparams("ppo", overrides=["learning_rate:lin_3e-4"])
    assert hp["learning_rate"] == "lin_3e-4"


def test_unknown_algo_did_you_mean():
    with pytest.raises(DynsplitError, match=r"unknown algorithm 'ppo2'.*did you mean 'ppo'"):
        load_hyperparams("ppo2")


def test_conf_file_is_merged_over_defaults(tmp_path):
    conf = tmp_path / "mine.yml"
    conf.write_text("default:\n  gamma: 0.0\n  env_kwargs:\n    codec: float16\n")
    hp = load_hyperparams("ppo", conf, overrides=["n_epochs:3"])
    assert hp["gamma"] == 0.0 and hp["n_epochs"] == 3
    assert hp["env_kwargs"] == {"channel": "mahimahi-lte-up-train", "episode_requests": 200, "codec": "float16",
                                "reward": "regret", "history": 16, "history_bin_s": 0.1}
    assert hp["learning_rate"] == load_hyperparams("ppo")["learning_rate"]


def test_unknown_key_in_conf_file_names_the_file(tmp_path):
    conf = tmp_path / "mine.yml"
    conf.write_text("default:\n  gama: 0.0\n")
    with pytest.raises(DynsplitError, match=r"'gama' .*mine\.yml.*did you mean 'gamma'"):
        load_hyperparams("ppo", conf)


def test_malformed_yaml_names_file_and_line(tmp_path):
    conf = tmp_path / "broken.yml"
    conf.write_text("default:\n  gamma: 0.3\n  net_arch: [64, 64\n  n_steps: 5\n")
    with pytest.raises(DynsplitError, match=r"malformed YAML in .*broken\.yml line \d+") as info:
        load_hyperparams("ppo", conf)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, match", [
    ("gamma: 0.3\n", r"has no 'default:' mapping .*found: gamma"),
    ("", r"has no 'default:' mapping .*found: NoneType"),
    ("default: 3\n", r"has no 'default:' mapping"),
])
def test_conf_file_without_default_entry(tmp_path, text, match):
    conf = tmp_path / "c.yml"
    conf.write_text(text)
    with pytest.raises(DynsplitError, match=match):
        read_config(conf)


def test_missing_conf_file(tmp_path):
    with pytest.raises(DynsplitError, match=r"config file .*nope\.yml does not exist"):
        load_hyperparams("dqn", tmp_path / "nope.yml")


def test_saved_config_reads_back(tmp_path):
    hp = load_hyperparams("dqn", overrides=["learning_rate:1e-3", "env_kwargs.codec:raw"])
    path = save_config(tmp_path / "config.yml", "dqn", hp)
    assert load_hyperparams("dqn", path) == hp
    with pytest.raises(DynsplitError, match=r"is for algo 'dqn', not 'ppo'"):
        load_hyperparams("ppo", path)
