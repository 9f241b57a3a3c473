"""The dynamic split computing environment ``dynsplit/DynamicSplit-v0``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dynsplit.splitting.errors import DynsplitError, did_you_mean
from dynsplit.splitting.latency import LatencyConfig, LatencyModel
from dynsplit.splitting.profile import Profile

from .backends import BACKENDS, LiveBackend, ProfiledBackend
from .load_traces import LoadTrace, load_load
from .profiles import resolve_profile
from .traces import ChannelTrace, load_channel

MODES = ("train", "eval")
OBSERVATION_KWARGS = ("history", "history_bin_s", "observe_estimates")
"""Env arguments that shape only what the agent observes, never the requests or their latencies: an agent
trained with other values can be evaluated on the same requests by an env that differs only in these."""
REWARDS = ("latency", "regret")
TRACE_SAMPLING = ("uniform", "duration")
DEFAULT_TRAIN_CHANNEL = "mahimahi-lte-up-train"
DEFAULT_EVAL_CHANNEL = "mahimahi-lte-up-test"
DEFAULT_LOAD = "azure-vm-avg"

_LOG_RATE_RANGE = 3.0  # log10(rate / 1 Mbit/s) is clipped to [-3, 3] (1 kbit/s .. 1 Gbit/s)
_LOG2_LATENCY_RANGE = 8.0  # log2(latency / T_ref) is clipped to [-8, 8]


class DynamicSplitEnv(gym.Env):
    """Choose where to split a DNN for every inference request, under a real channel and server load.

    ## Description
    A DNN is cut into a *head* run on an end device and a *tail* run on an edge server; only the tensor at
    the cut crosses the uplink. Candidate cuts are the model's natural bottlenecks (DESIGN §1.1) plus
    *offload* (send the raw uint8 input) and *local* (run everything on the device). Requests are
    closed-loop: each is issued when the previous one completes (plus ``think_time_s``). Every step the
    agent picks the cut for one request; its latency follows DESIGN §1.2 exactly: device time, the exact
    transfer time through the piecewise-constant rate trace ``R(t)`` starting when the head finishes,
    server time under the load ``L(t)`` and a fixed ``rtt_s``. The agent sees only the past.

    ## Action Space
    ``Discrete(n)``: ``0`` = offload, ``1 .. n-2`` = the kept bottlenecks in graph order, ``n-1`` = local.
    Names are in ``env.unwrapped.action_names``.

    ## Observation Space
    ``Box(float32)`` of size ``2k + n + 1 + 3n (+ n)`` with ``k = history`` and ``n`` actions; every
    entry is bounded (see ``observation_space``); ``env.unwrapped.obs_layout`` maps names to slices.

    | part | size | meaning |
    |------|------|---------|
    | ``rates`` | k | mean uplink rate in each of the last ``k`` bins of ``history_bin_s`` before the decision, oldest first, as ``clip(log10(R / 1 Mbit/s), -3, 3) / 3`` |
    | ``loads`` | k | mean server load in [0, 1] over the same bins |
    | ``prev_action`` | n | one-hot of the previous action (zeros at the first step) |
    | ``prev_latency`` | 1 | ``clip(log2(T_prev / T_ref), -8, 8) / 8`` (0 at the first step) |
    | ``static`` | 3n | per action: ``log10(bytes + 1) / 7``, ``device_s / T_ref``, ``min(server_s(L=0) / T_ref, 4) / 4`` |
    | ``estimates`` | n | only with ``observe_estimates``: ``clip(log2(T_est / T_ref), -8, 8) / 8`` where ``T_est`` is the latency of each action if the last bin's rate and load held (the paper's estimate) |

    ## Rewards
    ``reward="latency"`` (default): ``-T / T_ref`` per request, ``T`` the request's latency in seconds and
    ``T_ref`` the model's local latency (a per-model constant), so that returns are O(1) per step.
    ``reward="regret"``: ``-(T - T_oracle) / T_ref``, the same signal minus the clairvoyant latency of the
    same request. The oracle's latency does not depend on the action taken, so for a per-request
    (bandit-like) objective both rewards rank actions identically, but ``regret`` removes most of the
    channel's exogenous variance from the training signal. The policy never sees the oracle: it is used
    only in the reward, as privileged training information.

    ## Starting State
    ``mode="train"``: a random channel trace (uniformly, or in proportion to its duration with
    ``trace_sampling="duration"``) at a uniformly random offset, and a random load trace at a random
    offset, all drawn from ``self.np_random``. ``mode="eval"``: episode ``i`` walks channel trace
    ``i mod N`` and load trace ``i mod M`` from their starts (or ``options={"trace_index": i}``), so every
    policy sees identical conditions; ``reset(seed=...)`` restarts that walk at episode 0.

    ## Episode End
    Training episodes are truncated after ``episode_requests`` requests. Evaluation episodes terminate when
    the simulated clock has walked the whole channel trace once (or are truncated at ``max_eval_requests``).

    ## Info (every step)
    ``latency_s``, ``device_s``, ``transfer_s``, ``server_s``, ``bytes``, ``action_name``, ``failed``,
    ``rate_bps_at_decision``, ``load``, ``oracle_latency_s``, ``oracle_action``, ``regret_s``,
    ``sim_time_s`` (at decision), ``trace``; the live backend adds the profiled times of the same request.

    ## Arguments
    ``gymnasium.make("dynsplit/DynamicSplit-v0", **kwargs)`` with:

    * ``profile``: a :class:`Profile`, a profile JSON path, or ``None`` (the bundled profile of ``model``).
    * ``model``: model name; with no ``profile`` picks its bundled profile (default ``mobilenet_v3_large``).
    * ``channel``: bundled trace-set name, file or folder, or a list of :class:`ChannelTrace`
      (default ``mahimahi-lte-up-train`` in train mode, ``mahimahi-lte-up-test`` in eval mode).
    * ``load``: bundled load name, CSV file, a number in [0, 1] (constant), or a list of :class:`LoadTrace`
      (default ``azure-vm-avg``); ``load_speedup``: load-trace seconds per simulated second (default 1).
    * ``load_model``: ``"batch"`` (default) or ``"sharing"``; ``max_batch``: ``B_max`` (default: largest
      profiled batch size).
    * ``codec``: codec spec on the wire (default ``"int8"``); must be in the profile.
    * ``rate_scale``: multiplies every channel rate (default 5.0); ``trace_bin_s``: bin of Mahimahi traces
      (s, default 0.1).
    * ``rtt_s`` (default 0.01 s), ``max_transfer_s`` (default 10 s), ``think_time_s`` (default 0 s).
    * ``history`` (k, default 8) and ``history_bin_s`` (default 1.0 s); ``observe_estimates`` (default True).
    * ``episode_requests`` (train, default 200); ``max_eval_requests`` (eval, default ``None``);
      ``trace_sampling``: ``"uniform"`` (default) or ``"duration"`` (how training picks a trace).
    * ``mode``: ``"train"`` or ``"eval"``; ``reward``: ``"latency"`` or ``"regret"`` (see Rewards); ``backend``: ``"profiled"`` (default) or ``"live"``;
      ``live_options``: dict passed to the live backend (``images_dir``, ``device_threads``, ``model``).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        profile: Profile | str | None = None,
        model: str | None = None,
        channel: str | Sequence[ChannelTrace] | None = None,
        load: str | float | Sequence[LoadTrace] | None = DEFAULT_LOAD,
        load_model: str = "batch",
        max_batch: int | None = None,
        codec: str = "int8",
        rate_scale: float = 5.0,
        trace_bin_s: float = 0.1,
        rtt_s: float = 0.010,
        max_transfer_s: float = 10.0,
        think_time_s: float = 0.0,
        history: int = 8,
        history_bin_s: float = 1.0,
        observe_estimates: bool = True,
        episode_requests: int = 200,
        max_eval_requests: int | None = None,
        load_speedup: float = 1.0,
        mode: str = "train",
        reward: str = "latency",
        trace_sampling: str = "uniform",
        backend: str = "profiled",
        live_options: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise DynsplitError(f"unknown mode '{mode}'; expected one of {', '.join(MODES)}{did_you_mean(mode, MODES)}")
        if reward not in REWARDS:
            raise DynsplitError(
                f"unknown reward '{reward}'; expected one of {', '.join(REWARDS)}{did_you_mean(reward, REWARDS)}")
        if trace_sampling not in TRACE_SAMPLING:
            raise DynsplitError(
                f"unknown trace_sampling '{trace_sampling}'; expected one of {', '.join(TRACE_SAMPLING)}"
                f"{did_you_mean(trace_sampling, TRACE_SAMPLING)}")
        if backend not in BACKENDS:
            raise DynsplitError(
                f"unknown backend '{backend}'; expected one of {', '.join(BACKENDS)}{did_you_mean(backend, BACKENDS)}")
        for name, value in (("history", history), ("episode_requests", episode_requests)):
            if int(value) != value or value < 1:
                raise DynsplitError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("history_bin_s", history_bin_s), ("rate_scale", rate_scale),
                            ("load_speedup", load_speedup), ("trace_bin_s", trace_bin_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise DynsplitError(f"{name} must be a positive number, got {value!r}")
        if think_time_s < 0:
            raise DynsplitError(f"think_time_s must be >= 0 seconds, got {think_time_s!r}")
        if max_eval_requests is not None and max_eval_requests < 1:
            raise DynsplitError(f"max_eval_requests must be a positive integer or None, got {max_eval_requests!r}")

        self.render_mode = render_mode
        self.mode = mode
        self.reward_kind = reward
        self.profile = resolve_profile(profile, model)
        self.latency_model = LatencyModel(
            self.profile,
            LatencyConfig(codec=codec, load_model=load_model, max_batch=max_batch, rtt_s=rtt_s,
                          max_transfer_s=max_transfer_s),
        )
        if channel is None:
            channel = DEFAULT_TRAIN_CHANNEL if mode == "train" else DEFAULT_EVAL_CHANNEL
        if isinstance(channel, (str, bytes)) or hasattr(channel, "__fspath__"):
            self.channels = load_channel(channel, bin_s=trace_bin_s, rate_scale=rate_scale)
        else:
            self.channels = [c.scaled(rate_scale) if rate_scale != 1.0 else c for c in channel]
        if not self.channels:
            raise DynsplitError(f"channel {channel!r} holds no traces")
        if isinstance(load, (str, int, float)) or hasattr(load, "__fspath__"):
            self.loads = load_load(str(load) if not isinstance(load, str) else load)
        else:
            self.loads = list(load)
        if not self.loads:
            raise DynsplitError(f"load {load!r} holds no traces")

        self.history = int(history)
        self.history_bin_s = float(history_bin_s)
        self.observe_estimates = bool(observe_estimates)
        self.episode_requests = int(episode_requests)
        self.max_eval_requests = max_eval_requests
        self.think_time_s = float(think_time_s)
        self.load_speedup = float(load_speedup)
        self.trace_sampling = trace_sampling
        durations = np.array([c.duration_s for c in self.channels])
        self._trace_p = durations / durations.sum() if trace_sampling == "duration" else None
        self.action_names = list(self.latency_model.names)
        n = self.latency_model.n_actions
        self.n_actions = n

        if backend == "live":
            self.backend = LiveBackend(self.latency_model, **(live_options or {}))
        else:
            self.backend = ProfiledBackend(self.latency_model)
        self.backend_name = backend

        # Reward scale and the static per-action features.
        self.t_ref_s = max(self.latency_model.local_latency_s, 1e-6)
        lm = self.latency_model
        self._static = np.concatenate([
            np.log10(lm.bytes + 1.0) / 7.0,
            lm.device_s / self.t_ref_s,
            np.minimum(lm.server_s(0.0) / self.t_ref_s, 4.0) / 4.0,
        ]).astype(np.float32)
        np.clip(self._static, 0.0, 1.0, out=self._static)

        k = self.history
        parts = [("rates", k, -1.0, 1.0), ("loads", k, 0.0, 1.0), ("prev_action", n, 0.0, 1.0),
                 ("prev_latency", 1, -1.0, 1.0), ("static", 3 * n, 0.0, 1.0)]
        if self.observe_estimates:
            parts.append(("estimates", n, -1.0, 1.0))
        self.obs_layout: dict[str, slice] = {}
        low, high, start = [], [], 0
        for name, size, lo, hi in parts:
            self.obs_layout[name] = slice(start, start + size)
            low += [lo] * size
            high += [hi] * size
            start += size
        self.observation_space = spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)
        self._obs_buffer = np.zeros(start, dtype=np.float32)
        self._obs_buffer[self.obs_layout["static"]] = self._static
        self._inv_t_ref = 1.0 / self.t_ref_s
        self.action_space = spaces.Discrete(n)

        self._eval_episode = 0
        self._channel: ChannelTrace = self.channels[0]
        self._load: LoadTrace = self.loads[0]
        self._t0 = 0.0
        self._load_offset = 0.0
        self._t = 0.0
        self._steps = 0
        self._prev_action = -1
        self._prev_latency = 0.0

    # -- helpers ------------------------------------------------------------------------------------------
    def load_at(self, t_s: float) -> float:
        """Server load in [0, 1] at simulated time ``t_s`` (seconds)."""
        return float(self._load.value_at(self._load_offset + t_s * self.load_speedup))

    def observed_rates_bps(self) -> np.ndarray:
        """Mean rate (bit/s) of each of the last ``history`` bins before now, oldest first."""
        return self._channel.mean_rates_before(self._t, self.history, self.history_bin_s)

    def observed_loads(self) -> np.ndarray:
        """Mean load of each of the last ``history`` bins before now, oldest first."""
        if self.load_speedup == 1.0:
            return self._load.values_before(self._load_offset + self._t, self.history, self.history_bin_s)
        return self._load.values_before(self._load_offset + self._t * self.load_speedup, self.history,
                                        self.history_bin_s * self.load_speedup)

    def exact_latencies(self) -> np.ndarray:
        """Exact latency (seconds) of every action for a request decided now: what the oracle sees."""
        return self.latency_model.latencies(self._t, self._channel, self.load_at(self._t))[0]

    @property
    def observation_config(self) -> dict[str, Any]:
        """The :data:`OBSERVATION_KWARGS` of this env (saved with trained agents)."""
        return {"history": self.history, "history_bin_s": self.history_bin_s,
                "observe_estimates": self.observe_estimates}

    @property
    def sim_time_s(self) -> float:
        """Simulated time since the episode start (seconds)."""
        return self._t - self._t0

    @staticmethod
    def decode_rates(obs_rates: np.ndarray) -> np.ndarray:
        """Invert the ``rates`` part of the observation to bit/s."""
        return 1e6 * np.power(10.0, np.asarray(obs_rates, dtype=np.float64) * _LOG_RATE_RANGE)

    def _observation(self) -> np.ndarray:
        # Hot path (every step): fill one preallocated buffer in place; no np.clip (slow for tiny arrays).
        obs = self._obs_buffer
        layout = self.obs_layout
        rates = self.observed_rates_bps()
        loads = self.observed_loads()
        log_rates = np.log10(np.maximum(rates, 1e-3)) - 6.0
        np.minimum(np.maximum(log_rates, -_LOG_RATE_RANGE), _LOG_RATE_RANGE, out=log_rates)
        obs[layout["rates"]] = log_rates / _LOG_RATE_RANGE
        obs[layout["loads"]] = np.minimum(np.maximum(loads, 0.0), 1.0)
        prev = layout["prev_action"]
        obs[prev] = 0.0
        if self._prev_action >= 0:
            obs[prev.start + self._prev_action] = 1.0
            obs[layout["prev_latency"].start] = _log2_ratio(self._prev_latency, self.t_ref_s)
        else:
            obs[layout["prev_latency"].start] = 0.0
        if self.observe_estimates:
            est = self.latency_model.estimate(float(rates[-1]), float(obs[layout["loads"].stop - 1]))
            est = np.log2(np.maximum(est, 1e-9) * self._inv_t_ref)
            np.minimum(np.maximum(est, -_LOG2_LATENCY_RANGE), _LOG2_LATENCY_RANGE, out=est)
            obs[layout["estimates"]] = est / _LOG2_LATENCY_RANGE
        return obs.copy()

    # -- gymnasium API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if seed is not None:
            self._eval_episode = 0  # a new seed restarts the evaluation walk at the first trace
        if self.mode == "train" and "trace_index" not in options:
            if self._trace_p is None:
                self._channel = self.channels[int(self.np_random.integers(len(self.channels)))]
            else:
                self._channel = self.channels[int(self.np_random.choice(len(self.channels), p=self._trace_p))]
            self._load = self.loads[int(self.np_random.integers(len(self.loads)))]
            self._t0 = float(self.np_random.uniform(0.0, self._channel.duration_s))
            self._load_offset = float(self.np_random.uniform(0.0, self._load.duration_s))
        else:
            index = int(options.get("trace_index", self._eval_episode))
            if not 0 <= index < len(self.channels) * max(1, len(self.loads)) and "trace_index" in options:
                raise DynsplitError(f"trace_index {index} is out of range (0..{len(self.channels) - 1})")
            self._channel = self.channels[index % len(self.channels)]
            self._load = self.loads[index % len(self.loads)]
            self._t0 = 0.0
            self._load_offset = 0.0
            if "trace_index" not in options:
                self._eval_episode += 1
        self._t = self._t0
        self._steps = 0
        self._prev_action = -1
        self._prev_latency = 0.0
        return self._observation(), {"trace": self._channel.name, "load_trace": self._load.name,
                                     "sim_time_s": 0.0}

    def step(self, action):
        if not (isinstance(action, (int, np.integer)) or (isinstance(action, np.ndarray) and action.shape == ())) \
                or not 0 <= action < self.n_actions:
            raise DynsplitError(f"action {action!r} is outside the action space Discrete({self.n_actions})")
        action = int(action)
        t = self._t
        load = self.load_at(t)
        evaluation = self.latency_model.evaluate(t, self._channel, load)
        all_latencies = evaluation.latency_s
        oracle_action = int(all_latencies.argmin())
        result, extra = self.backend.execute(action, t, self._channel, load, evaluation)
        info = {
            "latency_s": result.latency_s,
            "device_s": result.device_s,
            "transfer_s": result.transfer_s,
            "server_s": result.server_s,
            "bytes": result.bytes,
            "failed": result.failed,
            "action_name": self.action_names[action],
            "rate_bps_at_decision": float(self._channel.rate_at(t)),
            "load": load,
            "oracle_latency_s": float(all_latencies[oracle_action]),
            "oracle_action": oracle_action,
            "regret_s": result.latency_s - float(all_latencies[oracle_action]),
            "sim_time_s": t - self._t0,
            "trace": self._channel.name,
        }
        if extra:
            info.update(extra)
        self._t = t + result.latency_s + self.think_time_s
        self._steps += 1
        self._prev_action = action
        self._prev_latency = result.latency_s
        if self.reward_kind == "regret":
            reward = -(result.latency_s - float(all_latencies[oracle_action])) / self.t_ref_s
        else:
            reward = -result.latency_s / self.t_ref_s
        terminated = truncated = False
        if self.mode == "train":
            truncated = self._steps >= self.episode_requests
        else:
            terminated = self._t - self._t0 >= self._channel.duration_s
            truncated = not terminated and self.max_eval_requests is not None and self._steps >= self.max_eval_requests
        return self._observation(), float(reward), terminated, truncated, info


def _log2_ratio(value: float, ref: float) -> float:
    ratio = math.log2(max(value, 1e-12) / ref)
    return max(-_LOG2_LATENCY_RANGE, min(_LOG2_LATENCY_RANGE, ratio)) / _LOG2_LATENCY_RANGE
