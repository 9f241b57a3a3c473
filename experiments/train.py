"""``dynsplit train``: train a PPO or DQN split controller (rl-baselines3-zoo and CleanRL habits).

One run writes one folder ``<log folder>/<algo>__<model>__<seed>__<YYYYmmdd-HHMMSS>`` holding

* ``config.yml`` -- the resolved hyperparameters and env_kwargs (``--conf-file`` reads it back),
  ``args.yml`` -- the arguments, ``command.txt`` -- the command line;
* ``final_model.zip``, ``best_model.zip`` (best mean latency on the held-out eval traces),
  ``checkpoints/<algo>_<steps>_steps.zip`` and, after Ctrl-C, ``interrupted_model.zip``; every model is
  written atomically (temporary file, then ``os.replace``);
* ``tb/`` -- TensorBoard events (``split/``, ``eval/``, SB3's ``rollout/``, ``train/``, the
  hyperparameters as a text table), ``progress.csv``, ``evaluations.csv``, ``monitor/``;
* ``train.json`` -- steps, wall time, speed and the last evaluation.

The heavy imports (torch, stable-baselines3) happen when training starts, so ``dynsplit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dynsplit.splitting.errors import DynsplitError

DEFAULT_LOG_FOLDER = "runs"
#: Env steps between held-out evaluations (also at the end of training).
DEFAULT_EVAL_FREQ = 10_000
#: Requests per held-out trace in one evaluation (bounds ``max_eval_requests``).
DEFAULT_EVAL_REQUESTS = 1000
#: Env steps between checkpoints.
DEFAULT_SAVE_FREQ = 50_000
#: PyTorch CPU threads while training. The policy is a 64x64 MLP: one thread is fastest, and on a shared
#: 2-core machine two threads made PPO 5-7x slower (spinning OpenMP threads).
DEFAULT_TORCH_THREADS = 1
#: Env steps between ``split/`` records for off-policy algorithms (on-policy: every rollout).
OFF_POLICY_SPLIT_LOG_FREQ = 1000


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the model was saved; carries where to find it.

    Attributes:
        run_dir: the run folder.
        model_path: ``interrupted_model.zip``.
        checkpoint_path: the checkpoint written at the interruption (resume from it with ``--resume``).
    """

    def __init__(self, run_dir: Path, model_path: Path, checkpoint_path: Path) -> None:
        super().__init__(f"training interrupted; model saved to {model_path}")
        self.run_dir = run_dir
        self.model_path = model_path
        self.checkpoint_path = checkpoint_path


# ----------------------------------------------------------------------------------------- command line
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``dynsplit train`` arguments to ``parser`` (the lead's CLI calls this)."""
    parser.add_argument("--algo", required=True, metavar="ALGO", help="ppo or dqn")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None,
                        help="total env steps (default: the config's n_timesteps); with --resume the run trains "
                             "until the model has this many")
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent and the training envs (default 0)")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel training envs (default: the config's)")
    parser.add_argument("--subproc", action="store_true",
                        help="one process per env (SubprocVecEnv); pays off only with the live backend")
    parser.add_argument("-f", "--log-folder", default=DEFAULT_LOG_FOLDER,
                        help=f"folder that gets the run folder (default {DEFAULT_LOG_FOLDER}/)")
    parser.add_argument("-tb", "--tensorboard-log", default=None, metavar="DIR",
                        help="TensorBoard root; the run logs to DIR/<run name> (default: <run folder>/tb)")
    parser.add_argument("-conf", "--conf-file", default=None, metavar="FILE.yml",
                        help="hyperparameter YAML with a 'default:' entry, merged over the bundled one "
                             "(a run's config.yml works)")
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
                        help="overrides, YAML values, dotted keys reach into mappings: learning_rate:1e-4 "
                             "policy_kwargs.net_arch:[128,128] env_kwargs.codec:float16")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="env argument (YAML value), same as --hyperparams env_kwargs.KEY:VALUE; repeatable")
    parser.add_argument("--eval-freq", type=int, default=DEFAULT_EVAL_FREQ,
                        help=f"env steps between held-out evaluations (default {DEFAULT_EVAL_FREQ}; 0: only at "
                             "the end)")
    parser.add_argument("--eval-channel", default=None, metavar="TRACES",
                        help="held-out channel traces (bundled name, file or folder; default: the test half "
                             "of a bundled '-train' set, else the env's eval default)")
    parser.add_argument("--eval-requests", type=int, default=DEFAULT_EVAL_REQUESTS,
                        help=f"requests per held-out trace in one evaluation (default {DEFAULT_EVAL_REQUESTS})")
    parser.add_argument("--save-freq", type=int, default=DEFAULT_SAVE_FREQ,
                        help=f"env steps between checkpoints (default {DEFAULT_SAVE_FREQ}; 0: none)")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT.zip",
                        help="continue training a saved model (its run's config.yml is used unless -conf is "
                             "given); keeps its step count")
    parser.add_argument("-nt", "--num-threads", type=int, default=DEFAULT_TORCH_THREADS,
                        help=f"PyTorch CPU threads while training (default {DEFAULT_TORCH_THREADS}: fastest for "
                             "the small MLP policies; 0: PyTorch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", type=int, default=1, help="0: quiet, 1: SB3 tables and eval lines")


def run_train(args: argparse.Namespace) -> int:
    """Run ``dynsplit train`` from parsed arguments; returns the exit status (130 after Ctrl-C)."""
    from dynsplit.agents.factory import check_algo
    from dynsplit.experiments.config import load_hyperparams

    check_algo(args.algo)
    conf_file = args.conf_file
    if args.resume is not None and conf_file is None:
        conf_file = run_config_of(args.resume)
        if conf_file is not None:
            print(f"resuming with the hyperparameters of {conf_file}", file=sys.stderr)
    overrides = list(args.hyperparams) + [env_kwarg_override(item) for item in args.env_kwarg]
    hyperparams = load_hyperparams(args.algo, conf_file, overrides)
    for key, value in (("n_timesteps", args.n_timesteps), ("n_envs", args.n_envs)):
        if value is not None:
            if value < 1:
                raise DynsplitError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
            hyperparams[key] = value
    arg_dict = {k: v for k, v in vars(args).items() if k != "func" and not callable(v)}
    try:
        run_dir = train(
            args.algo, hyperparams, seed=args.seed, log_folder=args.log_folder, tensorboard_log=args.tensorboard_log,
            eval_freq=args.eval_freq, eval_channel=args.eval_channel, eval_requests=args.eval_requests,
            save_freq=args.save_freq, resume=args.resume, subproc=args.subproc,
            progress=False if args.no_progress else None, verbose=args.verbose, num_threads=args.num_threads,
            args=arg_dict,
        )
    except TrainingInterrupted as exc:
        print(f"dynsplit: training interrupted; saved {exc.model_path} and {exc.checkpoint_path}\n"
              f"continue with: dynsplit train --algo {args.algo} --resume {exc.checkpoint_path}", file=sys.stderr)
        return 130
    print(str(run_dir))
    return 0


def env_kwarg_override(item: str) -> str:
    """``KEY=VALUE`` (``--env-kwarg``) as the override ``env_kwargs.KEY:VALUE``."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise DynsplitError(f"--env-kwarg '{item}' is not KEY=VALUE (e.g. codec=float16)")
    return f"env_kwargs.{key.strip()}:{value}"


def run_config_of(model_path: str | os.PathLike[str]) -> Path | None:
    """``config.yml`` of the run a model file belongs to (run folder or its ``checkpoints/``), if any."""
    path = Path(model_path)
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.yml").is_file():
            return folder / "config.yml"
    return None


# ------------------------------------------------------------------------------------------------ train
def train(
    algo: str,
    hyperparams: Mapping[str, Any],
    *,
    seed: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
    log_folder: str | os.PathLike[str] = DEFAULT_LOG_FOLDER,
    tensorboard_log: str | os.PathLike[str] | None = None,
    eval_freq: int = DEFAULT_EVAL_FREQ,
    eval_channel: str | None = None,
    eval_requests: int | None = DEFAULT_EVAL_REQUESTS,
    save_freq: int = DEFAULT_SAVE_FREQ,
    resume: str | os.PathLike[str] | None = None,
    subproc: bool = False,
    progress: bool | None = None,
    verbose: int = 1,
    num_threads: int = DEFAULT_TORCH_THREADS,
    args: Mapping[str, Any] | None = None,
) -> Path:
    """Train one agent and return its run folder (see the module docstring for its contents).

    Args:
        algo: ``"ppo"`` or ``"dqn"``.
        hyperparams: resolved hyperparameters (:func:`dynsplit.experiments.config.load_hyperparams`):
            SB3 arguments plus ``n_timesteps`` (total env steps), ``n_envs``, ``env_kwargs``, ``vec_env``.
        seed: seed of the agent and of the training envs (env ``i`` gets ``seed + i``).
        run_dir: the run folder (``None``: a new ``<algo>__<model>__<seed>__<time>`` under ``log_folder``).
        log_folder: parent of a new run folder.
        tensorboard_log: TensorBoard root; events go to ``<root>/<run name>`` (``None``: ``<run_dir>/tb``).
        eval_freq: env steps between held-out evaluations (0: only at the end).
        eval_channel: held-out channel traces (``None``: see :func:`eval_env_kwargs`).
        eval_requests: requests per held-out trace in one evaluation (``None``: whole traces).
        save_freq: env steps between checkpoints (0: none).
        resume: a saved model to continue; training stops when it has ``n_timesteps`` steps in total.
        subproc: one process per training env.
        progress: progress bar (``None``: only on a terminal).
        verbose: 0 quiet, 1 SB3's tables and one line per evaluation.
        num_threads: PyTorch CPU threads during training, restored afterwards (0: leave as is).
        args: written to ``args.yml`` (default: these arguments).

    Raises:
        DynsplitError: bad hyperparameters, env arguments or resume file.
        TrainingInterrupted: Ctrl-C; ``interrupted_model.zip`` and a checkpoint were saved first.
    """
    import torch as th
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    from dynsplit.agents.callbacks import (
        AtomicCheckpointCallback,
        PeriodicEvalCallback,
        SplitMetricsCallback,
        TqdmProgressCallback,
    )
    from dynsplit.agents.factory import (
        check_hyperparams,
        load_agent,
        make_agent,
        make_env,
        make_vec_env,
        read_model_data,
        save_atomic,
    )
    from dynsplit.experiments.config import save_config

    check_hyperparams(algo, hyperparams)
    hp = copy.deepcopy(dict(hyperparams))
    env_kwargs = dict(hp.get("env_kwargs") or {})
    hp["env_kwargs"] = env_kwargs
    n_envs = int(hp.get("n_envs", 1))
    n_timesteps = int(hp.get("n_timesteps", 100_000))
    for name, value in (("eval_freq", eval_freq), ("save_freq", save_freq), ("num_threads", num_threads)):
        if value is None or value < 0:
            raise DynsplitError(f"{name} must be >= 0 env steps, got {value!r}")

    # Fail on bad env arguments before any folder is made.
    probe = make_env(env_kwargs)
    model_name = str(probe.unwrapped.profile.model)
    probe.close()
    eval_kwargs = eval_env_kwargs(env_kwargs, eval_channel, eval_requests)
    make_env(eval_kwargs).close()
    start_steps = 0
    if resume is not None:
        start_steps = int(read_model_data(resume).get("num_timesteps", 0))
        if start_steps >= n_timesteps:
            raise DynsplitError(f"model {resume} already has {start_steps} steps, not fewer than n_timesteps "
                                f"{n_timesteps}; raise -n to train further")

    run_dir = make_run_dir(log_folder, algo, model_name, seed) if run_dir is None else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tensorboard_log is None:
        tb_dir, tb_root = run_dir / "tb", run_dir.parent
    else:
        tb_root = Path(tensorboard_log)
        tb_dir = tb_root / run_dir.name
    save_config(run_dir / "config.yml", algo, hp)
    call = dict(algo=algo, seed=seed, run_dir=str(run_dir), tensorboard_log=str(tb_dir), eval_freq=eval_freq,
                eval_channel=eval_channel, eval_requests=eval_requests, save_freq=save_freq,
                resume=None if resume is None else str(resume), subproc=subproc, num_threads=num_threads)
    _write_yaml(run_dir / "args.yml", dict(args) if args is not None else call)
    (run_dir / "command.txt").write_text(shlex.join(sys.argv) + "\n")

    vec_env = make_vec_env(env_kwargs, n_envs, seed, subproc=subproc or hp.get("vec_env") == "subproc",
                           monitor_dir=run_dir / "monitor")
    logger = None
    threads_before = th.get_num_threads()
    if num_threads > 0:
        th.set_num_threads(num_threads)
    try:
        if resume is not None:
            model = load_agent(algo, resume, env=vec_env)
            model.set_random_seed(seed)
        else:
            model = make_agent(algo, vec_env, hp, seed=seed)
        logger = _make_logger(run_dir, tb_dir, verbose)
        model.set_logger(logger)
        log_hyperparameters(logger, algo, hp, seed, step=model.num_timesteps)
        if verbose:
            print(f"run folder {run_dir}\nTensorBoard logs in {tb_dir}  (view: tensorboard --logdir {tb_root})",
                  file=sys.stderr)

        on_policy = isinstance(model, OnPolicyAlgorithm)
        split_log_freq = None if on_policy else max(1, min(OFF_POLICY_SPLIT_LOG_FREQ, n_timesteps // 10))
        progress_cb = TqdmProgressCallback(progress)
        evaluator = PeriodicEvalCallback(eval_kwargs, eval_freq, best_model_path=run_dir / "best_model.zip",
                                         log_path=run_dir / "evaluations.csv", name=algo, verbose=verbose)
        callbacks = [SplitMetricsCallback(split_log_freq), evaluator, progress_cb]
        if save_freq:
            callbacks.append(AtomicCheckpointCallback(max(save_freq // n_envs, 1), str(run_dir / "checkpoints"),
                                                      name_prefix=algo))
        started = time.perf_counter()
        try:
            model.learn(n_timesteps - model.num_timesteps, callback=CallbackList(callbacks),
                        reset_num_timesteps=resume is None, progress_bar=False)
        except KeyboardInterrupt:
            progress_cb.close()
            interrupted = save_atomic(model, run_dir / "interrupted_model.zip")
            checkpoint = save_atomic(model, run_dir / "checkpoints" / f"{algo}_{model.num_timesteps}_steps.zip")
            raise TrainingInterrupted(run_dir, interrupted, checkpoint) from None
        wall_s = time.perf_counter() - started
        final = save_atomic(model, run_dir / "final_model.zip")
    finally:
        th.set_num_threads(threads_before)
        with contextlib.suppress(EOFError, BrokenPipeError, ConnectionError):
            vec_env.close()
        if logger is not None:
            logger.close()

    steps = model.num_timesteps - start_steps
    summary = {"algo": algo, "seed": seed, "model": model_name, "num_timesteps": model.num_timesteps,
               "trained_steps": steps, "wall_s": wall_s, "steps_per_s": steps / wall_s if wall_s > 0 else None,
               "final_model": final.name, "best_mean_latency_ms": 1e3 * evaluator.best_mean_latency_s,
               "last_eval": evaluator.last_result, "resumed_from": None if resume is None else str(resume)}
    (run_dir / "train.json").write_text(json.dumps(_finite(summary), indent=1, default=_json_default) + "\n")
    if verbose:
        print(f"trained {steps} steps in {wall_s:.1f} s ({steps / max(wall_s, 1e-9):.0f} steps/s); "
              f"saved {final}", file=sys.stderr)
    return run_dir


def eval_env_kwargs(
    train_env_kwargs: Mapping[str, Any],
    eval_channel: str | None = None,
    eval_requests: int | None = DEFAULT_EVAL_REQUESTS,
) -> dict[str, Any]:
    """Env arguments of the held-out evaluation: the training ones in ``mode="eval"`` on other traces.

    The channel is ``eval_channel`` if given; else the ``-test`` half of a bundled ``-train`` set; else
    (no training channel given) the env's own eval default. A training channel without a known held-out
    half falls back to the env's eval default, with a warning on stderr.
    """
    kwargs = dict(train_env_kwargs)
    kwargs["mode"] = "eval"
    kwargs["max_eval_requests"] = eval_requests
    if eval_channel is None:
        eval_channel = held_out_channel(kwargs.get("channel"))
    if eval_channel is None:
        kwargs.pop("channel", None)
    else:
        kwargs["channel"] = eval_channel
    return kwargs


def held_out_channel(train_channel: Any) -> str | None:
    """The bundled ``X-test`` set for a bundled ``X-train`` set; ``None`` for the env's eval default."""
    if train_channel is None:
        return None
    from dynsplit.envs.bundled import channel_names

    if isinstance(train_channel, str) and train_channel.endswith("-train"):
        test = train_channel[: -len("-train")] + "-test"
        if test in channel_names():
            return test
    from dynsplit.envs.dynamic_split import DEFAULT_EVAL_CHANNEL

    print(f"dynsplit: no held-out half known for channel {train_channel!r}; evaluating on "
          f"{DEFAULT_EVAL_CHANNEL} (pass --eval-channel)", file=sys.stderr)
    return None


def make_run_dir(log_folder: str | os.PathLike[str], algo: str, model: str, seed: int) -> Path:
    """Create and return ``log_folder/<algo>__<model>__<seed>__<YYYYmmdd-HHMMSS>`` (``-2``... if taken)."""
    safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    base = Path(log_folder) / f"{algo}__{safe_model}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            i += 1
            path = base.with_name(f"{base.name}-{i}")


def log_hyperparameters(logger: Any, algo: str, hyperparams: Mapping[str, Any], seed: int, step: int = 0) -> None:
    """Write the hyperparameters as a markdown table to TensorBoard's text tab (CleanRL habit)."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    rows = {"algo": algo, "seed": seed, **_flatten(hyperparams)}
    table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{_cell(v)}|" for k, v in rows.items())
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_text("hyperparameters", table, step)
            fmt.writer.flush()


# -- helpers ---------------------------------------------------------------------------------------------
def _make_logger(run_dir: Path, tb_dir: Path, verbose: int):
    from stable_baselines3.common.logger import Logger, make_output_format

    tb_dir.mkdir(parents=True, exist_ok=True)
    formats = [make_output_format("csv", str(run_dir)), make_output_format("tensorboard", str(tb_dir))]
    if verbose >= 1:
        formats.insert(0, make_output_format("stdout", str(run_dir)))
    return Logger(folder=str(run_dir), output_formats=formats)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(dict(data), default=_json_default)), sort_keys=False))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has neither)."""
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Sequence):
        return list(value)
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dynsplit.experiments.train`` (the same as ``dynsplit train``)."""
    parser = argparse.ArgumentParser(prog="dynsplit train", description="Train a PPO or DQN split controller.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_train(args)
    except DynsplitError as exc:
        print(f"dynsplit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
