"""Training runs end to end with tiny budgets: run folder, TensorBoard metrics, save/load, resume, Ctrl-C."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("stable_baselines3")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from dynsplit.agents.factory import load_agent, make_env  # noqa: E402
from dynsplit.envs.profiles import resolve_profile  # noqa: E402
from dynsplit.experiments.config import load_hyperparams  # noqa: E402
from dynsplit.experiments.train import add_train_arguments, eval_env_kwargs, run_train, train  # noqa: E402
from dynsplit.splitting.errors import DynsplitError  # noqa: E402

ENV = {"episode_requests": 64}
RUN_FILES = ("config.yml", "args.yml", "command.txt", "final_model.zip", "best_model.zip", "train.json",
             "evaluations.csv", "progress.csv")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def _train(capsys, *argv: str) -> Path:
    assert run_train(_args(*argv, "--no-progress", "-v", "0")) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def _tiny_ppo(folder: Path, *extra: str) -> list[str]:
    return ["--algo", "ppo", "-n", "256", "--n-envs", "2", "-f", str(folder), "--hyperparams", "n_steps:64",
            "batch_size:64", "n_epochs:2", "--env-kwarg", "episode_requests=64", "--eval-freq", "128",
            "--eval-requests", "40", "--save-freq", "128", *extra]


def _events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    args = _args(*_tiny_ppo(folder), "--no-progress", "-v", "0")
    assert run_train(args) == 0
    (run_dir,) = folder.iterdir()
    return run_dir


def test_ppo_run_folder(ppo_run):
    assert ppo_run.name.startswith("ppo__mobilenet_v3_large__0__")
    for name in RUN_FILES:
        assert (ppo_run / name).is_file(), name
    assert sorted(p.name for p in (ppo_run / "checkpoints").iterdir()) == ["ppo_128_steps.zip", "ppo_256_steps.zip"]
    assert not list(ppo_run.glob("*.tmp*")) and not list((ppo_run / "checkpoints").glob(".*"))
    config = yaml.safe_load((ppo_run / "config.yml").read_text())
    assert config["algo"] == "ppo"
    assert config["default"]["n_steps"] == 64 and config["default"]["n_timesteps"] == 256
    assert config["default"]["env_kwargs"]["episode_requests"] == 64
    args = yaml.safe_load((ppo_run / "args.yml").read_text())
    assert args["algo"] == "ppo" and args["env_kwarg"] == ["episode_requests=64"]
    summary = json.loads((ppo_run / "train.json").read_text())
    assert summary["num_timesteps"] == 256 and summary["steps_per_s"] > 0
    assert summary["last_eval"]["requests"] == 2 * 40  # two held-out traces, bounded


def test_ppo_tensorboard_metrics(ppo_run):
    acc = _events(ppo_run)
    scalars = set(acc.Tags()["scalars"])
    for tag in ("split/mean_latency_ms", "split/regret_ms", "split/oracle_agreement", "split/failed_fraction",
                "split/action_frac/offload", "split/action_frac/local", "eval/mean_latency_ms",
                "eval/argmin_mean_latency_ms", "eval/oracle_mean_latency_ms", "eval/gap_closure",
                "rollout/ep_rew_mean"):
        assert tag in scalars, tag
    assert "split/actions" in acc.Tags()["histograms"]
    assert "hyperparameters/text_summary" in acc.Tags()["tensors"]
    latency = [e.value for e in acc.Scalars("split/mean_latency_ms")]
    regret = [e.value for e in acc.Scalars("split/regret_ms")]
    assert len(latency) == 2 and all(lat > reg >= 0 for lat, reg in zip(latency, regret, strict=True))
    evals = acc.Scalars("eval/argmin_mean_latency_ms")
    assert [e.step for e in evals] == [128, 256] and evals[0].value == evals[1].value  # cached baseline
    oracle = acc.Scalars("eval/oracle_mean_latency_ms")[0].value
    assert 0 < oracle <= evals[0].value


def test_saved_model_loads_and_predicts(ppo_run):
    from dynsplit.agents.factory import observation_kwargs_of

    observation = observation_kwargs_of(ppo_run / "final_model.zip")
    assert observation == {"history": 16, "history_bin_s": 0.1, "observe_estimates": True}  # ppo.yml
    with pytest.raises(DynsplitError, match="observations of shape"):
        load_agent("ppo", ppo_run / "final_model.zip", env=make_env(ENV))  # the default 8 x 1 s observation
    env = make_env({**ENV, **observation})
    obs, _ = env.reset(seed=3)
    for name in ("final_model.zip", "best_model.zip", "checkpoints/ppo_128_steps.zip"):
        agent = load_agent("ppo", ppo_run / name, env=env)
        action, _ = agent.predict(obs, deterministic=True)
        assert env.action_space.contains(int(action))
    agent = load_agent(None, ppo_run / "final_model", env=None)  # algo read from the file, .zip optional
    assert agent.num_timesteps == 256
    assert agent.dynsplit_env["action_names"] == env.unwrapped.action_names


def test_resume_continues_num_timesteps(ppo_run, tmp_path, capsys):
    checkpoint = ppo_run / "checkpoints" / "ppo_128_steps.zip"
    run_dir = _train(capsys, "--algo", "ppo", "-n", "384", "-f", str(tmp_path), "--resume", str(checkpoint),
                     "--eval-freq", "0", "--eval-requests", "20", "--save-freq", "0")
    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["num_timesteps"] == 384 and summary["trained_steps"] == 256
    assert summary["resumed_from"] == str(checkpoint)
    resumed_config = yaml.safe_load((run_dir / "config.yml").read_text())["default"]
    assert resumed_config["n_steps"] == 64  # the original run's config.yml was used
    steps = [e.step for e in _events(run_dir).Scalars("split/mean_latency_ms")]
    assert steps and min(steps) > 128
    assert load_agent("ppo", run_dir / "final_model.zip").num_timesteps == 384
    with pytest.raises(DynsplitError, match=r"already has 256 steps, not fewer than n_timesteps 256"):
        run_train(_args("--algo", "ppo", "-n", "256", "-f", str(tmp_path), "--resume",
                        str(ppo_run / "final_model.zip")))


def test_load_agent_errors(ppo_run, tmp_path):
    env = make_env(ENV)
    with pytest.raises(DynsplitError, match=r"model file .*missing\.zip does not exist"):
        load_agent("ppo", tmp_path / "missing.zip", env)
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DynsplitError, match=r"model file .*garbage\.zip is not a stable-baselines3 model"):
        load_agent("ppo", garbage, env)
    with pytest.raises(DynsplitError, match=r"is a ppo model, not dqn \(use --algo ppo\)"):
        load_agent("dqn", ppo_run / "final_model.zip", env)

    profile = resolve_profile(None, None)
    c = profile.candidates
    small = replace(profile, model="tiny3",
                    candidates=tuple(replace(x, index=i) for i, x in enumerate((c[0], c[1], c[-1]))))
    other = make_env({"profile": small})
    with pytest.raises(DynsplitError, match=r"was trained for 8 actions \(mobilenet_v3_large, codec int8\) but the "
                                            r"env has 3 \(model tiny3, codec int8\)"):
        load_agent("ppo", ppo_run / "final_model.zip", other)
    no_estimates = make_env({"observe_estimates": False})
    with pytest.raises(DynsplitError, match=r"observations of shape \(73,\) but the env gives \(49,\)"):
        load_agent("ppo", ppo_run / "final_model.zip", no_estimates)


def test_dqn_run(tmp_path, capsys):
    run_dir = _train(capsys, "--algo", "dqn", "-n", "300", "-f", str(tmp_path), "--hyperparams",
                     "learning_starts:100", "batch_size:32", "--env-kwarg", "episode_requests=64",
                     "--eval-freq", "0", "--eval-requests", "20", "--save-freq", "150")
    assert run_dir.name.startswith("dqn__mobilenet_v3_large__0__")
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "dqn_300_steps.zip").is_file()
    acc = _events(run_dir)
    scalars = set(acc.Tags()["scalars"])
    assert {"split/mean_latency_ms", "split/regret_ms", "eval/gap_closure"} <= scalars
    assert len(acc.Scalars("split/mean_latency_ms")) >= 2  # recorded every log_freq steps, not per episode
    env = make_env({**ENV, "history": 16, "history_bin_s": 0.1})  # dqn.yml's observation
    agent = load_agent("dqn", run_dir / "final_model.zip", env)
    action, _ = agent.predict(env.reset(seed=0)[0])
    assert 0 <= int(action) < env.unwrapped.n_actions


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, monkeypatch, capsys):
    from dynsplit.agents import callbacks

    def interrupt(self):
        if self.num_timesteps >= 100:
            raise KeyboardInterrupt
        return True

    monkeypatch.setattr(callbacks.SplitMetricsCallback, "_on_step", interrupt)
    assert run_train(_args(*_tiny_ppo(tmp_path), "--no-progress", "-v", "0")) == 130
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "interrupted_model.zip").is_file()
    assert (run_dir / "checkpoints" / "ppo_100_steps.zip").is_file()
    assert not (run_dir / "final_model.zip").exists()
    err = capsys.readouterr().err
    assert "training interrupted" in err and "--resume" in err
    assert load_agent("ppo", run_dir / "interrupted_model.zip").num_timesteps == 100


def test_bad_arguments_fail_before_a_run_folder(tmp_path):
    with pytest.raises(DynsplitError, match=r"unknown algorithm 'ppp'.*did you mean 'ppo'"):
        run_train(_args("--algo", "ppp", "-f", str(tmp_path)))
    with pytest.raises(DynsplitError, match=r"--env-kwarg 'codec' is not KEY=VALUE"):
        run_train(_args("--algo", "ppo", "-f", str(tmp_path), "--env-kwarg", "codec"))
    with pytest.raises(DynsplitError, match=r"unknown codec 'int4'"):
        run_train(_args("--algo", "ppo", "-f", str(tmp_path), "--env-kwarg", "codec=int4"))
    assert not list(tmp_path.iterdir())


def test_eval_env_kwargs_hold_out_the_test_half():
    kwargs = eval_env_kwargs({"channel": "mahimahi-lte-up-train", "codec": "raw"}, None, 100)
    assert kwargs == {"channel": "mahimahi-lte-up-test", "codec": "raw", "mode": "eval", "max_eval_requests": 100}
    assert eval_env_kwargs({}, "pensieve-test", None)["channel"] == "pensieve-test"
    assert "channel" not in eval_env_kwargs({}, None, 10)  # the env's own eval default


def test_cli_train_subprocess(tmp_path):
    cli = [sys.executable, "-m", "dynsplit.experiments.cli", "train"]
    if subprocess.run([*cli, "--help"], capture_output=True).returncode != 0:
        pytest.skip("`dynsplit train` is not wired into the CLI yet")
    result = subprocess.run([*cli, *_tiny_ppo(tmp_path), "-n", "128", "--no-progress", "-v", "0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert (run_dir / "final_model.zip").is_file()
    assert "train --algo ppo" in (run_dir / "command.txt").read_text()
    bad = subprocess.run([*cli, "--algo", "ppo", "-f", str(tmp_path), "--hyperparams", "gama:0.1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "did you mean 'gamma'" in bad.stderr and "Traceback" not in bad.stderr


def test_agent_predict_matches_single_and_batch(ppo_run):
    env = make_env({**ENV, "history": 16, "history_bin_s": 0.1})  # ppo.yml's observation
    agent = load_agent("ppo", ppo_run / "final_model.zip", env)
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    batch, _ = agent.predict(obs, deterministic=True)
    single = [int(agent.predict(o, deterministic=True)[0]) for o in obs]
    assert batch.tolist() == single


def test_train_api_progress_bar_and_tensorboard_root(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    hp = load_hyperparams("ppo", overrides=["n_timesteps:128", "n_envs:1", "n_steps:64", "batch_size:64",
                                            "n_epochs:1", "env_kwargs.episode_requests:64"])
    run_dir = train("ppo", hp, seed=1, run_dir=tmp_path / "my_run", tensorboard_log=tmp_path / "tb_root",
                    eval_freq=0, eval_requests=20, save_freq=0, progress=True, verbose=0)
    assert run_dir == tmp_path / "my_run"
    assert "128/128" in capsys.readouterr().err  # the tqdm bar reached the end
    assert torch.get_num_threads() == threads  # restored after training
    assert list((tmp_path / "tb_root" / "my_run").glob("events.out.tfevents.*"))
    assert not (run_dir / "tb").exists() and not (run_dir / "checkpoints").exists()
    args = yaml.safe_load((run_dir / "args.yml").read_text())
    assert args["seed"] == 1 and args["run_dir"] == str(run_dir)
    assert (run_dir / "best_model.zip").is_file()  # the evaluation at the end of training


def test_evaluation_gives_the_agent_its_own_observation(ppo_run):
    """The agent saw 16 x 0.1 s bins in training; evaluate runs it next to argmin (8 x 1 s) on the same requests."""
    from dynsplit.experiments.evaluate import evaluate_policies

    rows, summary = evaluate_policies({"max_eval_requests": 40}, ["argmin", "oracle", f"ppo={ppo_run / 'final_model.zip'}"])
    by_policy = {}
    for row in rows:
        by_policy.setdefault(row["policy"], []).append(row)
    assert set(by_policy) == {"argmin", "oracle", "ppo"}
    first = [(r["trace"], r["step"]) for r in by_policy["ppo"]][:1]
    assert first == [(r["trace"], r["step"]) for r in by_policy["argmin"]][:1]
    assert by_policy["ppo"][0]["sim_time_s"] == by_policy["argmin"][0]["sim_time_s"] == 0.0
    assert by_policy["ppo"][0]["oracle_latency_s"] == by_policy["argmin"][0]["oracle_latency_s"]
    assert summary["policies"]["ppo"]["requests"] == len(by_policy["ppo"])
