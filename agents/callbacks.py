"""stable-baselines3 callbacks that log split-computing metrics, evaluate on held-out traces and checkpoint.

Logged keys (TensorBoard groups them by prefix; milliseconds, as everything printed):

* ``split/`` (training requests, :class:`SplitMetricsCallback`): ``mean_latency_ms``, ``oracle_latency_ms``,
  ``regret_ms`` (mean latency minus the clairvoyant oracle's for the same request), ``oracle_agreement``
  (fraction of requests whose action was as fast as the oracle's), ``failed_fraction``, ``actions`` (a
  histogram of the chosen action ids) and ``action_frac/<action name>``.
* ``eval/`` (held-out traces, :class:`PeriodicEvalCallback`): ``mean_latency_ms``, ``argmin_mean_latency_ms``,
  ``oracle_mean_latency_ms``, ``gap_closure`` ``(argmin - agent) / (argmin - oracle)``, ``regret_ms``,
  ``p95_latency_ms``.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from tqdm import tqdm

from dynsplit.agents.baselines import AgentPolicy, make_policy
from dynsplit.agents.evaluation import rollout
from dynsplit.agents.factory import env_attr, make_env, save_atomic
from dynsplit.envs.dynamic_split import OBSERVATION_KWARGS

#: Regret (seconds) up to which an action counts as agreeing with the oracle (ties between actions).
AGREEMENT_TOL_S = 1e-9
# Outputs a histogram or a per-action key is kept out of: the stdout table truncates long keys.
_HISTOGRAM_ONLY = ("stdout", "log", "json", "csv")
_NOT_STDOUT = ("stdout", "log")


class SplitMetricsCallback(BaseCallback):
    """Log per-request latency, regret and chosen actions of the training env under ``split/``.

    Reads ``latency_s``, ``oracle_latency_s``, ``regret_s``, ``failed`` and ``action_name`` from every
    env's ``info`` at every step and records the aggregate since the last record.

    Args:
        log_freq: record (and dump the logger) every ``log_freq`` env steps, summed over envs; ``None``
            records at every rollout end, right before an on-policy algorithm (PPO) dumps its own logs.
            Off-policy algorithms (DQN) end a "rollout" every ``train_freq`` steps and dump only every few
            episodes, so give them a ``log_freq``.
        verbose: SB3 verbosity.
    """

    def __init__(self, log_freq: int | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if log_freq is not None and log_freq < 1:
            raise ValueError(f"log_freq must be a positive number of steps or None, got {log_freq!r}")
        self.log_freq = log_freq
        self.action_names: list[str] = []
        self._index: dict[str, int] = {}
        self._last_record = 0
        self._reset()

    def _reset(self) -> None:
        self._latency: list[float] = []
        self._oracle: list[float] = []
        self._regret: list[float] = []
        self._failed = 0
        self._actions: list[int] = []

    def _on_training_start(self) -> None:
        self.action_names = list(env_attr(self.training_env, "action_names"))
        self._index = {name: i for i, name in enumerate(self.action_names)}
        self._last_record = self.num_timesteps
        self._reset()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "latency_s" not in info:
                continue
            self._latency.append(float(info["latency_s"]))
            self._oracle.append(float(info["oracle_latency_s"]))
            self._regret.append(float(info["regret_s"]))
            self._failed += bool(info.get("failed", False))
            self._actions.append(self._index[info["action_name"]])
        if self.log_freq is not None and self.num_timesteps - self._last_record >= self.log_freq:
            if self.record():
                self.logger.dump(self.num_timesteps)
        return True

    def _on_rollout_end(self) -> None:
        if self.log_freq is None:
            self.record()

    def _on_training_end(self) -> None:
        if self.log_freq is not None and self.record():
            self.logger.dump(self.num_timesteps)

    def record(self) -> bool:
        """Record the requests seen since the last record; ``False`` (nothing recorded) if there were none."""
        self._last_record = self.num_timesteps
        if not self._latency:
            return False
        latency = np.asarray(self._latency)
        regret = np.asarray(self._regret)
        actions = np.asarray(self._actions, dtype=np.int64)
        n = latency.size
        self.logger.record("split/mean_latency_ms", 1e3 * float(latency.mean()))
        self.logger.record("split/oracle_latency_ms", 1e3 * float(np.mean(self._oracle)))
        self.logger.record("split/regret_ms", 1e3 * float(regret.mean()))
        self.logger.record("split/oracle_agreement", float(np.mean(regret <= AGREEMENT_TOL_S)))
        self.logger.record("split/failed_fraction", self._failed / n)
        self.logger.record("split/actions", actions, exclude=_HISTOGRAM_ONLY)
        counts = np.bincount(actions, minlength=len(self.action_names))
        for name, count in zip(self.action_names, counts, strict=True):
            self.logger.record(f"split/action_frac/{name}", float(count) / n, exclude=_NOT_STDOUT)
        self._reset()
        return True


class PeriodicEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps, evaluate the agent on held-out eval-mode traces next to ``argmin``.

    The agent acts deterministically through :func:`dynsplit.agents.evaluation.rollout` (every eval trace
    walked from its start, at most ``max_eval_requests`` requests each, as set in ``eval_env_kwargs``).
    ``argmin`` and ``oracle`` play the same traces once, at training start; their numbers are cached.
    The best agent so far by mean latency is saved atomically to ``best_model_path``. An evaluation also
    runs at the end of training unless one just ran at that step.

    Args:
        eval_env_kwargs: env arguments of the evaluation env (``mode`` is forced to ``"eval"``).
        eval_freq: env steps (summed over envs) between evaluations; 0 or ``None``: only at the end.
        best_model_path: where to save the best agent (``None``: not saved).
        log_path: CSV file that gets one row per evaluation (``None``: not written).
        name: the agent's name in rows (e.g. ``ppo``).
        verbose: 1 prints one line per evaluation.
    """

    def __init__(
        self,
        eval_env_kwargs: Mapping[str, Any],
        eval_freq: int | None = 10_000,
        best_model_path: str | Path | None = None,
        log_path: str | Path | None = None,
        name: str = "agent",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.eval_env_kwargs = {**dict(eval_env_kwargs), "mode": "eval"}
        self.eval_freq = int(eval_freq or 0)
        self.best_model_path = None if best_model_path is None else Path(best_model_path)
        self.log_path = None if log_path is None else Path(log_path)
        self.name = name
        self.best_mean_latency_s = math.inf
        self.baseline_latency_s: dict[str, float] = {}
        self.last_result: dict[str, float] = {}
        self._next_eval = 0
        self._last_eval_step: int | None = None

    def _on_training_start(self) -> None:
        if self.eval_freq:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        self.baselines()

    def baselines(self) -> dict[str, float]:
        """Mean latency (seconds) of ``argmin`` and ``oracle`` on the eval traces (computed once, cached)."""
        if not self.baseline_latency_s:
            # The paper's selector reads the env's default observation (1 s bins), whatever the agent sees.
            paper_kwargs = {k: v for k, v in self.eval_env_kwargs.items() if k not in OBSERVATION_KWARGS}
            for spec in ("argmin", "oracle"):
                env = make_env(paper_kwargs)
                try:
                    rows = rollout(env, make_policy(spec, env))
                finally:
                    env.close()
                self.baseline_latency_s[spec] = float(np.mean([r["latency_s"] for r in rows]))
            if self.verbose:
                print(f"eval: argmin {1e3 * self.baseline_latency_s['argmin']:.2f} ms, oracle "
                      f"{1e3 * self.baseline_latency_s['oracle']:.2f} ms on held-out traces", file=sys.stderr)
        return self.baseline_latency_s

    def _on_step(self) -> bool:
        if self.eval_freq and self.num_timesteps >= self._next_eval:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last_eval_step != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, float]:
        """Evaluate the agent now, log ``eval/...``, dump the logger and save a new best model."""
        base = self.baselines()
        env = make_env(self.eval_env_kwargs)
        try:
            rows = rollout(env, AgentPolicy(self.model, self.name), deterministic=True)
        finally:
            env.close()
        latency = np.array([r["latency_s"] for r in rows])
        mean = float(latency.mean())
        argmin, oracle = base["argmin"], base["oracle"]
        gap = (argmin - mean) / (argmin - oracle) if argmin - oracle > 1e-12 else math.nan
        result = {
            "timesteps": self.num_timesteps,
            "mean_latency_ms": 1e3 * mean,
            "argmin_mean_latency_ms": 1e3 * argmin,
            "oracle_mean_latency_ms": 1e3 * oracle,
            "gap_closure": gap,
            "regret_ms": 1e3 * float(np.mean([r["regret_s"] for r in rows])),
            "p95_latency_ms": 1e3 * float(np.percentile(latency, 95)),
            "requests": int(latency.size),
        }
        for key, value in result.items():
            if key not in ("timesteps", "requests"):
                self.logger.record(f"eval/{key}", value)
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        if mean < self.best_mean_latency_s:
            self.best_mean_latency_s = mean
            if self.best_model_path is not None:
                save_atomic(self.model, self.best_model_path)
        result["best"] = mean == self.best_mean_latency_s
        if self.log_path is not None:
            self._append_csv(result)
        if self.verbose:
            print(f"eval @ {self.num_timesteps} steps: {result['mean_latency_ms']:.2f} ms (argmin "
                  f"{result['argmin_mean_latency_ms']:.2f}, oracle {result['oracle_mean_latency_ms']:.2f}), "
                  f"gap closure {gap:+.3f}{'  (new best)' if result['best'] else ''}", file=sys.stderr)
        self._last_eval_step = self.num_timesteps
        self.last_result = result
        return result

    def _append_csv(self, result: Mapping[str, Any]) -> None:
        new = not self.log_path.exists()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(result))
            if new:
                writer.writeheader()
            writer.writerow(result)


class TqdmProgressCallback(BaseCallback):
    """A tqdm progress bar over the env steps of one ``learn()`` call (on stderr).

    Args:
        progress: ``False`` disables the bar; ``None`` shows it only when stderr is a terminal.
    """

    def __init__(self, progress: bool | None = None) -> None:
        super().__init__()
        self.progress = progress
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        enabled = sys.stderr.isatty() if self.progress is None else bool(self.progress)
        total = int(self.locals["total_timesteps"]) - self.model.num_timesteps
        self.bar = tqdm(total=total, unit="step", desc="train", disable=not enabled, dynamic_ncols=True)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar (also after an interrupted ``learn()``)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class AtomicCheckpointCallback(CheckpointCallback):
    """SB3's :class:`CheckpointCallback` (``<prefix>_<steps>_steps.zip`` every ``save_freq`` calls),
    writing each checkpoint atomically (temporary file, then ``os.replace``).

    ``save_freq`` counts calls, i.e. vectorised steps: pass ``max(env_steps // n_envs, 1)``.
    """

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            self.save_now()
        return True

    def save_now(self) -> Path:
        """Write a checkpoint for the current step now."""
        path = save_atomic(self.model, self._checkpoint_path(extension="zip"))
        if self.verbose >= 2:
            print(f"saved checkpoint {path}", file=sys.stderr)
        return path
