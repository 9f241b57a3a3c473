"""Build, save and load stable-baselines3 split controllers (PPO, DQN) for ``dynsplit/DynamicSplit-v0``.

Hyperparameters are plain data (rl-baselines3-zoo habit): every key is either an argument of the SB3
algorithm's constructor or one of :data:`OWN_KEYS`; classes are named by strings
(``policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}``), never given as code. Learning rates and
clip ranges accept ``lin_<value>`` for a linear schedule from ``value`` down to 0.

A model made here remembers the env it was made for (``agent.dynsplit_env``: model name, codec, action
names, observation settings), so that :func:`load_agent` can name both sides when a model meets an env with
other actions, and evaluation can give each agent the observation it was trained with.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from dynsplit.envs import ENV_ID
from dynsplit.envs.dynamic_split import DynamicSplitEnv
from dynsplit.splitting.atomic_files import atomic_path
from dynsplit.splitting.errors import DynsplitError, did_you_mean

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN}

#: Keys of a hyperparameter dict that are dynsplit's own, not SB3 constructor arguments.
OWN_KEYS = ("n_timesteps", "n_envs", "env_kwargs", "vec_env")

#: Activation functions and optimizers that ``policy_kwargs`` may name.
ACTIVATIONS: dict[str, type[th.nn.Module]] = {
    "tanh": th.nn.Tanh, "relu": th.nn.ReLU, "elu": th.nn.ELU, "leaky_relu": th.nn.LeakyReLU,
    "gelu": th.nn.GELU, "silu": th.nn.SiLU,
}
OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {
    "adam": th.optim.Adam, "adamw": th.optim.AdamW, "rmsprop": th.optim.RMSprop, "sgd": th.optim.SGD,
}
VEC_ENVS = ("dummy", "subproc")

# Constructor arguments that are set by the factory or would need code in the config.
_NOT_CONFIGURABLE = {"self", "env", "seed", "tensorboard_log", "_init_setup_model", "rollout_buffer_class",
                     "rollout_buffer_kwargs", "replay_buffer_class", "replay_buffer_kwargs"}
_NOT_CONFIGURABLE_POLICY = {"self", "observation_space", "action_space", "lr_schedule",
                            "features_extractor_class", "features_extractor_kwargs"}
_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")


def check_algo(algo: str) -> type[BaseAlgorithm]:
    """Return the SB3 class of ``algo`` (``"ppo"`` or ``"dqn"``), or raise :class:`DynsplitError`."""
    if algo not in ALGOS:
        raise DynsplitError(f"unknown algorithm '{algo}'; expected one of {', '.join(ALGOS)}{did_you_mean(algo, ALGOS)}")
    return ALGOS[algo]


def algo_params(algo: str) -> list[str]:
    """Names of the SB3 constructor arguments of ``algo`` that a config may set."""
    cls = check_algo(algo)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in _NOT_CONFIGURABLE]


def env_params() -> list[str]:
    """Names of the :class:`DynamicSplitEnv` constructor arguments (valid ``env_kwargs`` keys)."""
    return [p for p in inspect.signature(DynamicSplitEnv.__init__).parameters if p != "self"]


def check_hyperparams(algo: str, hyperparams: Mapping[str, Any], *, source: str = "hyperparameters") -> None:
    """Raise :class:`DynsplitError` (naming ``source``) for any key or value a run could not use.

    Checks top-level keys against the SB3 constructor of ``algo`` plus :data:`OWN_KEYS`, ``env_kwargs``
    keys against :class:`DynamicSplitEnv`, ``policy_kwargs`` keys against the policy class, and the names
    of activations, optimizers and schedules.
    """
    cls = check_algo(algo)
    known = algo_params(algo) + list(OWN_KEYS)
    for key in hyperparams:
        if key not in known:
            raise DynsplitError(
                f"unknown hyperparameter '{key}' for {algo} in {source}{did_you_mean(key, known)}; expected an "
                f"argument of stable_baselines3.{cls.__name__} or one of {', '.join(OWN_KEYS)}")
    for key in ("n_timesteps", "n_envs"):
        if key in hyperparams:
            _positive_int(hyperparams[key], key, source)
    env_kwargs = hyperparams.get("env_kwargs") or {}
    if not isinstance(env_kwargs, Mapping):
        raise DynsplitError(f"env_kwargs in {source} must be a mapping of env arguments, got {env_kwargs!r}")
    names = env_params()
    for key in env_kwargs:
        if key not in names:
            raise DynsplitError(f"unknown env_kwargs key '{key}' in {source}{did_you_mean(key, names)}; expected "
                                f"an argument of DynamicSplitEnv")
    vec_env = hyperparams.get("vec_env", "dummy")
    if vec_env not in VEC_ENVS:
        raise DynsplitError(f"vec_env '{vec_env}' in {source} is unknown; expected one of {', '.join(VEC_ENVS)}"
                            f"{did_you_mean(str(vec_env), VEC_ENVS)}")
    policy = hyperparams.get("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise DynsplitError(f"policy '{policy}' in {source} does not fit the env's flat Box observation; "
                            f"expected MlpPolicy{did_you_mean(str(policy), ['MlpPolicy'])}")
    for key in _SCHEDULED:
        if key in hyperparams:
            _schedule(hyperparams[key], key, source)
    policy_kwargs = hyperparams.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, Mapping):
        raise DynsplitError(f"policy_kwargs in {source} must be a mapping, got {policy_kwargs!r}")
    _resolve_policy_kwargs(algo, policy_kwargs, source)


def make_agent(
    algo: str,
    env: VecEnv | gym.Env,
    hyperparams: Mapping[str, Any],
    seed: int = 0,
    tensorboard_log: str | os.PathLike[str] | None = None,
    verbose: int = 0,
) -> BaseAlgorithm:
    """Build an untrained ``algo`` agent on ``env`` from a hyperparameter dict.

    Args:
        algo: ``"ppo"`` or ``"dqn"``.
        env: the (vectorised) training env; see :func:`make_vec_env`.
        hyperparams: SB3 constructor arguments plus :data:`OWN_KEYS` (ignored here); validated with
            :func:`check_hyperparams`.
        seed: seed of the agent's RNGs (torch, numpy, action space).
        tensorboard_log: folder for SB3's own TensorBoard logger (``None``: none; ``dynsplit train`` sets
            its own logger instead).
        verbose: SB3 verbosity (0 silent, 1 info).

    Returns:
        The SB3 algorithm, with ``agent.dynsplit_env`` describing the env (saved with the model).
    """
    check_hyperparams(algo, hyperparams)
    cls = ALGOS[algo]
    kwargs = {k: v for k, v in hyperparams.items() if k not in OWN_KEYS}
    kwargs.setdefault("policy", "MlpPolicy")
    kwargs.setdefault("device", "cpu")  # small MLPs: the CPU beats a GPU's launch overhead
    for key in _SCHEDULED:
        if key in kwargs:
            kwargs[key] = _schedule(kwargs[key], key, "hyperparameters")
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _resolve_policy_kwargs(algo, kwargs["policy_kwargs"] or {}, "hyperparameters")
    agent = cls(env=env, seed=seed, tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
                verbose=verbose, **kwargs)
    agent.dynsplit_env = describe_env(env)
    return agent


def describe_env(env: VecEnv | gym.Env) -> dict[str, Any]:
    """Model name, codec, action names and observation settings of a (vectorised) dynsplit env, as saved
    with an agent."""
    profile = env_attr(env, "profile")
    latency_model = env_attr(env, "latency_model")
    return {"model": profile.model, "codec": latency_model.config.codec,
            "action_names": list(env_attr(env, "action_names")),
            "observation": dict(env_attr(env, "observation_config"))}


def observation_kwargs_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The env's observation arguments (``history``, ``history_bin_s``, ``observe_estimates``) that the
    agent saved at ``path`` was trained with; empty for a model saved without them."""
    meta = read_model_data(path).get("dynsplit_env") or {}
    return dict(meta.get("observation") or {})


def env_attr(env: VecEnv | gym.Env, name: str) -> Any:
    """Attribute ``name`` of the (first) unwrapped :class:`DynamicSplitEnv` behind ``env``."""
    if isinstance(env, VecEnv):
        return env.get_attr(name, indices=0)[0]
    return getattr(env.unwrapped, name)


def make_env(env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gymnasium.make("dynsplit/DynamicSplit-v0", **env_kwargs)`` (importable in worker processes)."""
    import dynsplit  # noqa: F401  (registers the env id in a fresh worker process)

    return gym.make(ENV_ID, **dict(env_kwargs or {}))


def make_vec_env(
    env_kwargs: Mapping[str, Any] | None = None,
    n_envs: int = 1,
    seed: int = 0,
    *,
    subproc: bool = False,
    monitor_dir: str | os.PathLike[str] | None = None,
) -> VecEnv:
    """``n_envs`` copies of the env, each wrapped in ``Monitor``, seeded ``seed, seed+1, ...``.

    Args:
        env_kwargs: arguments of :class:`DynamicSplitEnv`.
        n_envs: number of parallel envs.
        seed: seed of the first env.
        subproc: one process per env (``SubprocVecEnv``) instead of one process (``DummyVecEnv``). The env
            steps in about 0.1 ms, so processes pay off only with the live backend.
        monitor_dir: folder for the ``Monitor`` CSV files (``None``: not written).
    """
    _positive_int(n_envs, "n_envs", "make_vec_env")
    return sb3_make_vec_env(
        functools.partial(make_env, dict(env_kwargs or {})), n_envs=n_envs, seed=seed,
        monitor_dir=None if monitor_dir is None else str(monitor_dir),
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
    )


def save_atomic(agent: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """Save ``agent`` to ``path`` (a ``.zip``) via a temporary file in the same folder and ``os.replace``.

    A reader never sees a half-written model, even if training is killed during the save.
    """
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    with atomic_path(path) as tmp:
        agent.save(tmp)
    return path


def read_model_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The class parameters stored in an SB3 model zip (spaces, policy class, ``dynsplit_env``...).

    Raises :class:`DynsplitError` if the file is missing or is not an SB3 model.
    """
    path = _model_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("data").decode()
        data = json_to_data(raw)
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        raise DynsplitError(f"model file {path} is not a stable-baselines3 model zip ({type(exc).__name__})") from None
    if not isinstance(data, dict) or "action_space" not in data or "policy_class" not in data:
        raise DynsplitError(f"model file {path} is not a stable-baselines3 model zip (no action space or policy)")
    return data


def algo_of(data: Mapping[str, Any]) -> str | None:
    """Which of :data:`ALGOS` saved ``data`` (from :func:`read_model_data`), or ``None``."""
    policy_class = data.get("policy_class")
    for name, cls in ALGOS.items():
        if isinstance(policy_class, type) and any(issubclass(policy_class, p) for p in cls.policy_aliases.values()):
            return name
    return None


def load_agent(
    algo: str | None,
    path: str | os.PathLike[str],
    env: VecEnv | gym.Env | None = None,
    device: str = "cpu",
) -> BaseAlgorithm:
    """Load a saved agent, checking that it fits ``env``.

    Args:
        algo: ``"ppo"``, ``"dqn"`` or ``None`` (read from the file).
        path: the model zip (the ``.zip`` suffix may be left out).
        env: the env to attach (``None``: none; enough for ``predict``).
        device: torch device for the policy.

    Raises:
        DynsplitError: the file is missing or no SB3 model, was saved by the other algorithm, or was trained
            for another number of actions or observation shape than ``env`` has.
    """
    path = _model_path(path)
    data = read_model_data(path)
    saved_algo = algo_of(data)
    if algo is None:
        if saved_algo is None:
            raise DynsplitError(f"model file {path} holds a {getattr(data['policy_class'], '__name__', '?')} policy; "
                                f"expected one of {', '.join(ALGOS)}")
        algo = saved_algo
    cls = check_algo(algo)
    if saved_algo is not None and saved_algo != algo:
        raise DynsplitError(f"model {path} is a {saved_algo} model, not {algo} (use --algo {saved_algo})")
    if env is not None:
        _check_spaces(path, data, env)
    try:
        return cls.load(path, env=env, device=device)
    except (zipfile.BadZipFile, KeyError, RuntimeError, EOFError) as exc:
        raise DynsplitError(f"model file {path} could not be loaded as {algo}: {type(exc).__name__}: {exc}") from None


# -- helpers -------------------------------------------------------------------------------------------------
def _model_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    with_zip = path.with_name(path.name + ".zip")
    if path.suffix != ".zip" and with_zip.is_file():
        return with_zip
    raise DynsplitError(f"model file {path} does not exist")


def _check_spaces(path: Path, data: Mapping[str, Any], env: VecEnv | gym.Env) -> None:
    saved_n = getattr(data["action_space"], "n", None)
    env_n = env.action_space.n
    saved_meta = data.get("dynsplit_env") or {}
    env_meta = describe_env(env)
    if saved_n is None or int(saved_n) != int(env_n):
        trained = (f"{saved_meta.get('model', '?')}, codec {saved_meta.get('codec', '?')}" if saved_meta
                   else f"action space {data['action_space']}")
        raise DynsplitError(f"model {path} was trained for {saved_n} actions ({trained}) but the env has {env_n} "
                            f"(model {env_meta['model']}, codec {env_meta['codec']})")
    saved_shape = tuple(getattr(data.get("observation_space"), "shape", ()) or ())
    if saved_shape != tuple(env.observation_space.shape):
        raise DynsplitError(f"model {path} was trained for observations of shape {saved_shape} but the env gives "
                            f"{tuple(env.observation_space.shape)} (other history or observe_estimates?)")


def _positive_int(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise DynsplitError(f"{name} in {source} must be a positive integer, got {value!r}")
    return int(value)


def _schedule(value: Any, name: str, source: str) -> Any:
    """A float, or ``"lin_<float>"`` turned into SB3's linear schedule from that value to 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            pass
        else:
            return _LinearSchedule(start)
    if value is None and name == "clip_range_vf":
        return None
    raise DynsplitError(f"{name} in {source} must be a number or 'lin_<number>', got {value!r}")


class _LinearSchedule:
    """``progress_remaining -> start * progress_remaining`` (picklable, unlike a closure)."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start}"


def _resolve_policy_kwargs(algo: str, policy_kwargs: Mapping[str, Any], source: str) -> dict[str, Any]:
    policy_cls = ALGOS[algo].policy_aliases["MlpPolicy"]
    names = [p for p in inspect.signature(policy_cls.__init__).parameters if p not in _NOT_CONFIGURABLE_POLICY]
    out = dict(policy_kwargs)
    for key, value in policy_kwargs.items():
        if key not in names:
            raise DynsplitError(f"unknown policy_kwargs key '{key}' for {algo} in {source}{did_you_mean(key, names)}; "
                                f"expected an argument of {policy_cls.__name__}")
        if key == "activation_fn":
            out[key] = _named(value, ACTIVATIONS, "activation_fn", source)
        elif key == "optimizer_class":
            out[key] = _named(value, OPTIMIZERS, "optimizer_class", source)
    return out


def _named(value: Any, table: Mapping[str, Any], what: str, source: str) -> Any:
    if isinstance(value, type) and value in table.values():
        return value
    key = str(value).lower()
    if key not in table:
        raise DynsplitError(f"{what} '{value}' in {source} is unknown; expected one of {', '.join(table)}"
                            f"{did_you_mean(key, table)}")
    return table[key]
