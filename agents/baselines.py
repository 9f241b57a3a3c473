"""Baseline split policies (DESIGN §1.5), all behind stable-baselines3's ``predict`` interface.

Every policy here has ``predict(observation, state=None, episode_start=None, deterministic=True) ->
(actions, state)`` like :class:`stable_baselines3.common.type_aliases.PolicyPredictor`, so a baseline and
a trained agent are evaluated by the same code (:mod:`dynsplit.agents.evaluation`, or SB3's own
``evaluate_policy``). ``observation`` is one observation ``(obs_dim,)`` -- the answer is a 0-d int array,
as SB3 returns for a single observation -- or a batch ``(n, obs_dim)`` -- the answer has shape ``(n,)``.
Every policy also has a ``name`` (the key its results are pooled under), a ``seed`` (``None`` when it
has no randomness) and ``info`` (a JSON-able dict written next to its results).

==================  ======================================================================================
name                policy
==================  ======================================================================================
``argmin``          the paper's selector: the last observed rate bin and the last load held constant,
                    argmin of :meth:`LatencyModel.estimate <dynsplit.splitting.latency.LatencyModel.estimate>`
``argmin-harmonic`` the same with the harmonic mean of the last 5 rate bins (Pensieve's MPC predictor)
``static``          the single best fixed action on the *training* traces
``local``           always run the whole model on the device
``offload``         always send the raw input
``random``          uniformly random actions (seeded)
``oracle``          clairvoyant: the exact argmin for the request about to be decided (lower bound)
``ppo=PATH``        a stable-baselines3 agent loaded by :func:`dynsplit.agents.factory.load_agent`
``dqn=PATH``        (``ALGO[LABEL]=PATH`` names it ``ALGO[LABEL]``, to compare several variants)
==================  ======================================================================================

The analytic baselines do no latency arithmetic of their own: they read rates and loads from the
observation and ask the environment's one :class:`~dynsplit.splitting.latency.LatencyModel`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from dynsplit.envs import ENV_ID
from dynsplit.envs.dynamic_split import DEFAULT_TRAIN_CHANNEL
from dynsplit.splitting.errors import DynsplitError, did_you_mean

BASELINE_NAMES = ("argmin", "argmin-fast", "argmin-harmonic", "static", "local", "offload", "random", "oracle")
#: Bin width (seconds) of the rate that ``argmin-fast`` holds constant.
FAST_BIN_S = 0.1
#: Baselines that read another observation than the evaluation env's default (only arguments from
#: ``OBSERVATION_KWARGS``, so their requests stay identical to every other policy's).
BASELINE_OBSERVATION: dict[str, dict[str, Any]] = {"argmin-fast": {"history_bin_s": FAST_BIN_S}}
AGENT_ALGOS = ("ppo", "dqn")
#: Rate bins averaged by ``argmin-harmonic`` (Pensieve's MPC uses the last 5 throughput samples).
HARMONIC_BINS = 5
#: Requests walked per training trace and action by ``static`` (long trace sets are capped).
STATIC_MAX_REQUESTS = 2000

_AGENT_SPEC = re.compile(r"^(?P<algo>[A-Za-z0-9_-]+?)(?:\[(?P<label>[^\]=]+)\])?=(?P<paths>.+)$")


# ----------------------------------------------------------------------------------------------- interface
class Policy:
    """Base class: turns single observations and batches into one call of :meth:`_act` on a batch."""

    name: str = "policy"
    seed: int | None = None

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions for one observation (0-d int array) or a batch ``(n, obs_dim)`` (``(n,)`` int array).

        ``state`` is returned unchanged and ``episode_start`` is ignored (no policy here is recurrent);
        ``deterministic`` is ignored too (only ``random`` is stochastic, by design).
        """
        obs = np.asarray(observation)
        if obs.ndim not in (1, 2):
            raise DynsplitError(f"{self.name}: observation of shape {obs.shape} (expected (obs_dim,) or "
                                "(n, obs_dim))")
        batch = obs.reshape(1, -1) if obs.ndim == 1 else obs
        actions = np.asarray(self._act(batch), dtype=np.int64).reshape(batch.shape[0])
        return (actions.reshape(()) if obs.ndim == 1 else actions), state

    def _act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations ``(n, obs_dim)``; subclasses override."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _ObservationReader(Policy):
    """A policy that reads rates and loads out of the env's observation, using the env's layout."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__()
        base = env.unwrapped
        self.latency_model = base.latency_model
        self._rates = base.obs_layout["rates"]
        self._loads = base.obs_layout["loads"]
        self._decode = base.decode_rates
        self._obs_dim = int(base.observation_space.shape[0])

    def _check(self, obs: np.ndarray) -> None:
        if obs.shape[-1] != self._obs_dim:
            raise DynsplitError(f"{self.name}: observation has {obs.shape[-1]} entries, expected {self._obs_dim} "
                                "(was the policy built for another env configuration?)")

    def rate_estimate_bps(self, observation: np.ndarray) -> np.ndarray:
        """The rate (bit/s) this policy assumes will hold, per observation (shape ``(n,)`` or ``()``)."""
        obs = np.asarray(observation, dtype=np.float64)
        self._check(obs)
        return self._estimate_rate(self._decode(obs[..., self._rates]))

    def _estimate_rate(self, rates_bps: np.ndarray) -> np.ndarray:
        """Rate estimate (bit/s) from decoded rate bins ``(..., k)``, oldest first."""
        raise NotImplementedError

    def _act(self, obs: np.ndarray) -> np.ndarray:
        self._check(obs)
        obs = obs.astype(np.float64, copy=False)
        rates = self._estimate_rate(self._decode(obs[:, self._rates]))
        loads = obs[:, self._loads][:, -1]
        estimate = self.latency_model.estimate
        return np.array([int(np.argmin(estimate(float(r), float(load)))) for r, load in zip(rates, loads,
                                                                                             strict=True)])


class ArgminPolicy(_ObservationReader):
    """The paper's selector: latency of every action if the last observed rate and load held; argmin.

    The rate is the mean rate of the last ``history_bin_s`` bin before the decision (decoded from the
    observation's ``rates``, so it carries the observation's float32 rounding and its clip to
    [1 kbit/s, 1 Gbit/s]); the load is the mean load of the last bin. On a constant channel and load this
    is exact, i.e. it picks what the oracle picks.

    ``argmin-fast`` is the same selector on an observation of 0.1 s bins (:data:`FAST_BIN_S`): on the
    bundled Mahimahi uplink traces it closes about 0.11 of the argmin-oracle gap, on Pensieve about 0.7
    (``benchmarks/bench_policies.py``); the 1 s ``argmin`` stays the paper's reference for gap closure.

    Args:
        env: the environment (wrapped or not) whose latency model and observation layout to use.
    """

    name = "argmin"

    def _estimate_rate(self, rates_bps: np.ndarray) -> np.ndarray:
        return rates_bps[..., -1]


class ArgminHarmonicPolicy(_ObservationReader):
    """``argmin`` with the harmonic mean of the last ``bins`` rate bins as the rate estimate.

    The harmonic mean is dominated by the low rates, so a short burst does not tempt it into a large
    transfer (the predictor of Pensieve's MPC baseline). With a history shorter than ``bins`` it
    averages all the bins there are.

    Args:
        env: the environment whose latency model and observation layout to use.
        bins: how many of the most recent rate bins to average (default 5).
    """

    name = "argmin-harmonic"

    def __init__(self, env: gym.Env, bins: int = HARMONIC_BINS) -> None:
        super().__init__(env)
        if int(bins) != bins or bins < 1:
            raise DynsplitError(f"harmonic-mean bins must be a positive integer, got {bins!r}")
        self.bins = int(bins)
        self.info = {"bins": min(self.bins, self._rates.stop - self._rates.start)}

    def _estimate_rate(self, rates_bps: np.ndarray) -> np.ndarray:
        recent = rates_bps[..., -self.bins:]
        return recent.shape[-1] / np.sum(1.0 / recent, axis=-1)


class FixedPolicy(Policy):
    """Always the same action.

    Args:
        action: the action id (``0`` = offload, ``n-1`` = local).
        name: the policy's name (default ``fixed[<action>]``).
    """

    def __init__(self, action: int, name: str | None = None) -> None:
        super().__init__()
        if isinstance(action, bool) or int(action) != action or action < 0:
            raise DynsplitError(f"fixed action must be a non-negative integer, got {action!r}")
        self.action = int(action)
        self.name = name or f"fixed[{self.action}]"

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return np.full(obs.shape[0], self.action)


class RandomPolicy(Policy):
    """Uniformly random actions from its own generator (deterministic per ``seed``).

    Args:
        n_actions: size of the action space.
        seed: seed of the policy's ``numpy.random.Generator``.
    """

    name = "random"

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        super().__init__()
        if int(n_actions) != n_actions or n_actions < 1:
            raise DynsplitError(f"n_actions must be a positive integer, got {n_actions!r}")
        self.n_actions = int(n_actions)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self._rng.integers(self.n_actions, size=obs.shape[0])


class OraclePolicy(Policy):
    """Clairvoyant lower bound: the action of least *exact* latency for the request about to be decided.

    It ignores the observation and reads ``env.unwrapped.exact_latencies()`` -- which looks at the channel
    after the decision time -- when :meth:`predict` is called. It is therefore only meaningful in a
    sequential loop on that very env, called right before ``env.step`` (as
    :func:`dynsplit.agents.evaluation.rollout` does); it refuses batches of more than one observation.
    Greedy per request: in the closed loop it is a lower bound per request, not strictly on the mean.

    Args:
        env: the environment whose next request it decides.
    """

    name = "oracle"

    def __init__(self, env: gym.Env) -> None:
        super().__init__()
        self.env = env.unwrapped

    def _act(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape[0] != 1:
            raise DynsplitError(f"the oracle decides one request of its own env at a time, got a batch of "
                                f"{obs.shape[0]} observations")
        return np.array([int(np.argmin(self.env.exact_latencies()))])


class StaticPolicy(FixedPolicy):
    """The single fixed action with the lowest mean latency on the *training* traces.

    Every action is played alone through the training traces in eval mode (each trace from its start,
    at most ``max_requests_per_trace`` requests per trace and action). So that every action is judged on
    the same stretch of channel, each trace's requests count only up to the time the shortest of the
    walks covered; the mean is over all those requests (pooled over traces). Ties go to the lower action.

    Args:
        train_env_kwargs: keyword arguments of ``gymnasium.make("dynsplit/DynamicSplit-v0", ...)`` for the
            training conditions (``mode`` is forced to ``"eval"``; without ``channel``, the env's default
            *training* channel is used, not the eval default that ``mode="eval"`` would pick).
        max_requests_per_trace: cap per trace and action (default 2000); a smaller ``max_eval_requests``
            in ``train_env_kwargs`` wins.

    Attributes:
        means_s: mean latency (seconds) of every action on the training traces, by action name.
        action, action_name: the chosen action.
    """

    def __init__(self, train_env_kwargs: Mapping[str, Any], *,
                 max_requests_per_trace: int = STATIC_MAX_REQUESTS) -> None:
        kwargs = dict(train_env_kwargs)
        cap = int(max_requests_per_trace)
        if cap < 1:
            raise DynsplitError(f"max_requests_per_trace must be a positive integer, got {max_requests_per_trace!r}")
        if kwargs.get("max_eval_requests") is not None:
            cap = min(cap, int(kwargs["max_eval_requests"]))
        if kwargs.get("channel") is None:  # the env's default channel depends on the mode: pin the training one
            kwargs["channel"] = DEFAULT_TRAIN_CHANNEL
        kwargs.update(mode="eval", max_eval_requests=cap)
        env = gym.make(ENV_ID, **kwargs)
        base = env.unwrapped
        names = list(base.action_names)
        n_traces = len(base.channels)
        # walks[a][i]: (decision times, latencies) of action a on trace i.
        walks: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for action in range(base.n_actions):
            per_trace = []
            for i in range(n_traces):
                env.reset(options={"trace_index": i})
                times, lats, done = [], [], False
                while not done:
                    _, _, term, trunc, info = env.step(action)
                    times.append(info["sim_time_s"])
                    lats.append(info["latency_s"])
                    done = term or trunc
                per_trace.append((np.array(times), np.array(lats)))
            walks.append(per_trace)
        env.close()
        means = []
        for per_trace in walks:
            horizons = [min(w[i][0][-1] + w[i][1][-1] for w in walks) for i in range(n_traces)]
            lat = np.concatenate([lats[times < h] for (times, lats), h in zip(per_trace, horizons, strict=True)])
            means.append(float(lat.mean()))
        best = int(np.argmin(means))
        super().__init__(best, name="static")
        self.action_names = names
        self.action_name = names[best]
        self.means_s = dict(zip(names, means, strict=True))
        self.info = {"action": self.action_name, "train_mean_latency_s": self.means_s,
                     "train_traces": [c.name for c in base.channels], "max_requests_per_trace": cap}


class AgentPolicy(Policy):
    """Adapter around a stable-baselines3 model: its ``predict``, plus a ``name`` and a ``seed`` label.

    Args:
        model: any object with SB3's ``predict`` (a ``BaseAlgorithm``).
        name: the name results are pooled under (e.g. ``ppo``).
        seed: label of this model among several trained ones (e.g. its index).
        path: where it was loaded from (recorded in ``info``).
    """

    def __init__(self, model: Any, name: str, seed: int | None = None, path: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.seed = seed
        self.info = {"path": path} if path is not None else {}

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The model's own ``predict`` (its deterministic flag is honoured)."""
        actions, state = self.model.predict(observation, state=state, episode_start=episode_start,
                                            deterministic=deterministic)
        return np.asarray(actions, dtype=np.int64), state


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class PolicySpec:
    """One parsed policy entry.

    Attributes:
        name: name results are pooled under (``argmin``, ``ppo``, ``ppo[noest]``, ...).
        algo: ``None`` for a baseline, else the SB3 algorithm (``ppo`` or ``dqn``).
        paths: model files of an agent, one per trained seed (empty for a baseline).
    """

    name: str
    algo: str | None = None
    paths: tuple[str, ...] = ()


def parse_policy_spec(spec: str) -> PolicySpec:
    """Parse ``NAME`` (a baseline), ``ALGO=PATH`` or ``ALGO[LABEL]=PATH``; ``PATH`` may hold several
    ``;``-separated model files (one per trained seed)."""
    text = str(spec).strip()
    if "=" not in text:
        if text not in BASELINE_NAMES:
            choices = [*BASELINE_NAMES, *(f"{a}=PATH" for a in AGENT_ALGOS)]
            raise DynsplitError(f"unknown policy '{text}'{did_you_mean(text, BASELINE_NAMES)}; expected one of "
                                f"{', '.join(choices)}")
        return PolicySpec(text)
    match = _AGENT_SPEC.match(text)
    algo = match.group("algo").lower() if match else text.split("=", 1)[0].split("[", 1)[0].strip().lower()
    if algo not in AGENT_ALGOS:
        raise DynsplitError(f"unknown agent '{algo}' in policy '{text}'{did_you_mean(algo, AGENT_ALGOS)}; "
                            f"expected {' or '.join(a + '=PATH' for a in AGENT_ALGOS)}")
    if match is None:
        raise DynsplitError(f"policy '{text}' is malformed (expected {algo}=PATH or {algo}[LABEL]=PATH)")
    paths = tuple(p.strip() for p in match.group("paths").split(";") if p.strip())
    if not paths:
        raise DynsplitError(f"policy '{text}' names no model file (expected {algo}=PATH)")
    label = match.group("label")
    return PolicySpec(f"{algo}[{label.strip()}]" if label else algo, algo, paths)


def parse_policy_specs(specs: Iterable[str]) -> list[PolicySpec]:
    """Parse several entries; agent entries with the same name are merged (their paths are seeds).

    A baseline named twice, or an empty list, raises :class:`DynsplitError`.
    """
    merged: dict[str, PolicySpec] = {}
    for spec in specs:
        if not str(spec).strip():
            continue
        parsed = parse_policy_spec(spec)
        if parsed.name in merged:
            if parsed.algo is None:
                raise DynsplitError(f"policy '{parsed.name}' is listed twice")
            old = merged[parsed.name]
            parsed = PolicySpec(parsed.name, parsed.algo, old.paths + parsed.paths)
        merged[parsed.name] = parsed
    if not merged:
        raise DynsplitError("no policy given (expected e.g. argmin,oracle or ppo=PATH)")
    return list(merged.values())


def default_train_env_kwargs(env: gym.Env) -> dict[str, Any]:
    """Training conditions matching ``env``: its ``gymnasium.make`` kwargs without ``channel``, ``mode``
    and ``max_eval_requests`` (so the env's default training channel is used)."""
    spec = getattr(env, "spec", None)
    if spec is None:
        raise DynsplitError("policy 'static' needs train_env_kwargs when the env was not built by gymnasium.make")
    drop = {"channel", "mode", "max_eval_requests"}
    return {k: v for k, v in (spec.kwargs or {}).items() if k not in drop}


def make_policy(spec: str | PolicySpec, env: gym.Env, *, train_env_kwargs: Mapping[str, Any] | None = None,
                seed: int = 0, static: StaticPolicy | None = None) -> Policy:
    """Build the policy named by ``spec`` for ``env``.

    Args:
        spec: a name from :data:`BASELINE_NAMES`, or ``ppo=PATH`` / ``dqn=PATH`` (one path; the model is
            loaded by :func:`dynsplit.agents.factory.load_agent` against ``env``), or a :class:`PolicySpec`.
        env: the (eval) environment the policy will act in; ``oracle`` is bound to it.
        train_env_kwargs: training conditions for ``static`` (default :func:`default_train_env_kwargs`).
        seed: RNG seed of ``random``; the seed label of an agent.
        static: an already fitted :class:`StaticPolicy` to reuse (fitting walks the training traces).
    """
    parsed = spec if isinstance(spec, PolicySpec) else parse_policy_spec(spec)
    base = env.unwrapped
    if parsed.algo is not None:
        if len(parsed.paths) != 1:
            raise DynsplitError(f"make_policy loads one model, got {len(parsed.paths)} paths for '{parsed.name}'")
        from dynsplit.agents.factory import load_agent

        model = load_agent(parsed.algo, parsed.paths[0], env)
        return AgentPolicy(model, parsed.name, seed=seed, path=parsed.paths[0])
    name = parsed.name
    if name == "argmin":
        return ArgminPolicy(env)
    if name == "argmin-fast":
        bin_s = base.history_bin_s
        if bin_s != FAST_BIN_S:
            raise DynsplitError(f"argmin-fast reads {FAST_BIN_S} s rate bins, but the env observes {bin_s} s bins "
                                f"(make its env with history_bin_s={FAST_BIN_S}; `dynsplit evaluate` does)")
        policy = ArgminPolicy(env)
        policy.name = "argmin-fast"
        return policy
    if name == "argmin-harmonic":
        return ArgminHarmonicPolicy(env)
    if name == "local":
        return FixedPolicy(base.n_actions - 1, name="local")
    if name == "offload":
        return FixedPolicy(0, name="offload")
    if name == "random":
        return RandomPolicy(base.n_actions, seed=seed)
    if name == "oracle":
        return OraclePolicy(env)
    if name == "static":
        if static is None:
            kwargs = default_train_env_kwargs(env) if train_env_kwargs is None else train_env_kwargs
            static = StaticPolicy(kwargs)
        if static.action_names != list(base.action_names):
            raise DynsplitError(f"static policy was fitted on actions {static.action_names}, but the env has "
                                f"{list(base.action_names)} (use the same profile and codec)")
        return static
    raise AssertionError(f"unhandled baseline {name!r}")  # pragma: no cover - BASELINE_NAMES is exhaustive

