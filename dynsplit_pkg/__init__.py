"""dynsplit: dynamic split computing of deep neural networks with RL split controllers.

Layout (imports flow one way): ``dynsplit.splitting`` <- ``dynsplit.envs`` <- ``dynsplit.agents``
<- ``dynsplit.experiments``.

``import dynsplit`` makes ``gymnasium.make("dynsplit/DynamicSplit-v0")`` work, yet keeps
``import dynsplit.splitting`` free of gymnasium (the layering test checks it): when gymnasium is already
imported the environment is registered at once, otherwise a one-shot import hook registers it right after
gymnasium finishes importing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"
ENV_ID = "dynsplit/DynamicSplit-v0"


def _register_env() -> None:
    import dynsplit.envs  # noqa: F401  (its import registers ENV_ID)


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps gymnasium's loader so that the env is registered once it is loaded."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return original.create_module(spec)

            def exec_module(self, module):
                original.exec_module(module)
                _register_env()

        spec.loader = _Loader()
        return spec


if "gymnasium" in sys.modules:
    _register_env()
elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterGymnasium())

__all__ = ["ENV_ID", "__version__"]
