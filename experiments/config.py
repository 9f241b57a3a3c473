"""Hyperparameter files (rl-baselines3-zoo style): one YAML per algorithm with a ``default:`` entry.

A file looks like ``experiments/configs/ppo.yml``::

    default:
      n_timesteps: 100000
      learning_rate: 3.0e-4
      policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}
      env_kwargs: {episode_requests: 200}

A user's ``--conf-file`` is merged over the bundled file of the algorithm (mappings such as ``env_kwargs``
key by key), so it may hold only the keys it changes. ``key:value`` overrides come last; the value is
parsed as YAML, and dotted keys reach into mappings (``env_kwargs.codec:int8``,
``policy_kwargs.net_arch:[128,128]``). Numbers such as ``3e-4`` are read as floats (YAML 1.2), not as
strings. Every key is checked (did-you-mean on a typo) before anything is trained.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dynsplit.agents.factory import check_algo, check_hyperparams
from dynsplit.splitting.atomic_files import atomic_output
from dynsplit.splitting.errors import DynsplitError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ENTRY = "default"
_INT_KEYS = ("n_timesteps", "n_envs")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``3e-4`` and ``1e5`` as floats (YAML 1.1 wants a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def default_config_path(algo: str) -> Path:
    """The bundled hyperparameter file of ``algo`` (``experiments/configs/<algo>.yml``)."""
    check_algo(algo)
    return CONFIG_DIR / f"{algo}.yml"


def parse_yaml_value(text: str) -> Any:
    """Parse one override value as YAML (``[64, 64]`` -> list, ``3e-4`` -> float, ``int8`` -> str)."""
    return yaml.load(text, Loader=_Loader)


def read_config(path: str | os.PathLike[str], algo: str | None = None) -> dict[str, Any]:
    """The ``default:`` entry of a hyperparameter YAML file.

    Raises :class:`DynsplitError` naming the file (and line) when it is missing, malformed, has no
    ``default:`` mapping, or declares another ``algo:`` than ``algo``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DynsplitError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DynsplitError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DynsplitError(f"malformed YAML in {path}{where}: {problem}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get(ENTRY), Mapping):
        found = ", ".join(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
        raise DynsplitError(f"config file {path} has no '{ENTRY}:' mapping of hyperparameters (found: {found or 'nothing'})")
    saved_algo = data.get("algo")
    if algo is not None and saved_algo is not None and saved_algo != algo:
        raise DynsplitError(f"config file {path} is for algo '{saved_algo}', not '{algo}'")
    return copy.deepcopy(dict(data[ENTRY]))


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``; nested mappings are merged key by key (copies, inputs untouched)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(hyperparams: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key:value`` overrides (dotted keys reach into mappings); returns a new dict."""
    out = copy.deepcopy(dict(hyperparams))
    for item in overrides:
        key, sep, text = str(item).partition(":")
        key = key.strip()
        if not sep or not key:
            raise DynsplitError(f"override '{item}' is not key:value (e.g. learning_rate:3e-4 or env_kwargs.codec:int8)")
        try:
            value = parse_yaml_value(text.strip())
        except yaml.YAMLError:
            raise DynsplitError(f"override '{item}': value '{text.strip()}' is not valid YAML") from None
        *parents, leaf = key.split(".")
        target = out
        for depth, part in enumerate(parents):
            node = target.setdefault(part, {})
            if node is None:
                node = target[part] = {}
            if not isinstance(node, dict):
                raise DynsplitError(f"override '{item}': '{'.'.join(parents[:depth + 1])}' is {node!r}, not a mapping")
            target = node
        target[leaf] = value
    return out


def load_hyperparams(
    algo: str,
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """Resolved hyperparameters of ``algo``: bundled defaults, then ``path`` merged over them, then overrides.

    Args:
        algo: ``"ppo"`` or ``"dqn"``.
        path: a user YAML file with a ``default:`` entry (``None``: only the bundled file).
        overrides: ``key:value`` strings, applied last.

    Returns:
        A plain dict: SB3 constructor arguments plus ``n_timesteps``, ``n_envs``, ``env_kwargs`` (always a
        dict) and optionally ``vec_env``.

    Raises:
        DynsplitError: unknown algorithm or key (with did-you-mean), malformed file or override.
    """
    default_path = default_config_path(algo)
    hyperparams = read_config(default_path, algo)
    check_hyperparams(algo, hyperparams, source=str(default_path))
    if path is not None:
        user = read_config(path, algo)
        check_hyperparams(algo, user, source=str(path))
        hyperparams = merge(hyperparams, user)
    overrides = list(overrides)
    if overrides:
        hyperparams = apply_overrides(hyperparams, overrides)
        check_hyperparams(algo, hyperparams, source="overrides")
    if hyperparams.get("env_kwargs") is None:
        hyperparams["env_kwargs"] = {}
    for key in _INT_KEYS:
        if key in hyperparams:
            hyperparams[key] = int(hyperparams[key])
    return hyperparams


def save_config(path: str | os.PathLike[str], algo: str, hyperparams: Mapping[str, Any]) -> Path:
    """Write resolved hyperparameters as a config file that ``--conf-file`` can read back."""
    path = Path(path)
    data = {"algo": algo, ENTRY: _plain(hyperparams)}
    with atomic_output(path) as handle:
        handle.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path


def _plain(value: Any) -> Any:
    """Only YAML-safe types (tuples become lists, other objects their ``str``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    return str(value)
