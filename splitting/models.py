"""Building the models that dynsplit splits.

A *model spec* is either the name of a torchvision classification model (``"resnet50"``; built with random
weights, ``weights=None``, nothing is ever downloaded) or a user's ``package.module:callable``
(``"mypkg.nets:make_net"``; a path to a Python file works too: ``"nets/tiny.py:TinyNet"``). The callable is
called with no arguments when it is a class or a factory; an ``nn.Module`` instance is used as it is.

Input shapes are tuples of element counts per dimension (no unit beyond "elements"), batch first:
``(1, 3, 224, 224)`` is one RGB image of 224x224 pixels.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from .errors import DynsplitError, did_you_mean

#: Default input shape (batch, channels, height, width), in elements, for an image classifier.
DEFAULT_INPUT_SHAPE: tuple[int, ...] = (1, 3, 224, 224)

#: Models whose default input differs from :data:`DEFAULT_INPUT_SHAPE` (the resolution they were designed for).
_SPECIAL_INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "inception_v3": (1, 3, 299, 299),
}


@lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def classification_model_names() -> list[str]:
    """Return the names of torchvision's classification models, sorted alphabetically."""
    return list(_torchvision_names())


def is_user_spec(spec: str) -> bool:
    """Return True when ``spec`` names a user's ``module:callable`` rather than a torchvision model."""
    return ":" in spec


def _import_user_module(module_part: str, spec: str):
    """Import ``module_part`` (a dotted module name or a ``.py`` file path) for the model ``spec``."""
    looks_like_file = module_part.endswith(".py") or "/" in module_part or "\\" in module_part
    try:
        if looks_like_file:
            path = Path(module_part).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            name = f"dynsplit_user_model_{abs(hash(str(path.resolve())))}"
            if name in sys.modules:
                return sys.modules[name]
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"not a Python module: {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return module
        return importlib.import_module(module_part)
    except Exception as exc:  # any failure inside the user's module is reported as a user mistake
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DynsplitError(
            f"cannot import module '{module_part}' for model '{spec}': {type(exc).__name__}: {first}"
        ) from exc


def _build_user_model(spec: str) -> torch.nn.Module:
    module_part, _, attr_part = spec.rpartition(":")
    if not module_part or not attr_part:
        raise DynsplitError(
            f"invalid model spec '{spec}': expected a torchvision model name or 'package.module:callable'"
        )
    module = _import_user_module(module_part, spec)
    obj = module
    for piece in attr_part.split("."):
        if not hasattr(obj, piece):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise DynsplitError(
                f"module '{module_part}' has no attribute '{attr_part}' for model '{spec}'"
                f"{did_you_mean(piece, public)}"
            )
        obj = getattr(obj, piece)
    if isinstance(obj, torch.nn.Module):
        model = obj
    elif callable(obj):
        try:
            model = obj()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise DynsplitError(
                f"calling '{spec}' with no arguments failed: {type(exc).__name__}: {first}"
            ) from exc
    else:
        raise DynsplitError(
            f"'{spec}' is a {type(obj).__name__}; expected an nn.Module, an nn.Module class or a "
            "function returning one"
        )
    if not isinstance(model, torch.nn.Module):
        raise DynsplitError(f"'{spec}' returned a {type(model).__name__}; expected a torch.nn.Module")
    return model


def build_model(spec: str) -> torch.nn.Module:
    """Build the model named by ``spec`` and return it in eval mode.

    ``spec`` is a torchvision classification model name (random weights, never downloaded) or a user's
    ``package.module:callable`` / ``path/to/file.py:callable``. Raises :class:`DynsplitError` for an unknown
    name (with a suggestion), a module that cannot be imported, a missing attribute, or a callable whose
    result is not an ``nn.Module``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DynsplitError(
            f"invalid model spec {spec!r}: expected a torchvision model name or 'module:callable'"
        )
    spec = spec.strip()
    if is_user_spec(spec):
        model = _build_user_model(spec)
    else:
        names = _torchvision_names()
        if spec not in names:
            raise DynsplitError(
                f"unknown model '{spec}': expected a torchvision classification model name or "
                f"'package.module:callable'{did_you_mean(spec.lower(), names)}"
            )
        import torchvision

        with warnings.catch_warnings():
            # Some builders warn about weight initialisation defaults when weights=None; irrelevant here.
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(spec, weights=None)
    return model.eval()


def default_input_shape(spec: str) -> tuple[int, ...]:
    """Return the default input shape (batch, channels, height, width; elements) for the model ``spec``.

    ``(1, 3, 224, 224)`` except for models designed for another resolution (inception_v3: 299x299).
    """
    name = spec.strip() if isinstance(spec, str) else spec
    return _SPECIAL_INPUT_SHAPES.get(name, DEFAULT_INPUT_SHAPE)


_SHAPE_SEPARATORS = re.compile(r"\s*[xX,×]\s*|\s+")


def parse_input_shape(text: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Parse an input shape such as ``"1x3x224x224"`` or ``"1,3,224,224"`` into a tuple of positive ints.

    Surrounding brackets and spaces are allowed (``"(1, 3, 224, 224)"``). A tuple or list of ints is
    validated and returned as a tuple. Raises :class:`DynsplitError` on anything else.
    """
    expected = "expected positive integers separated by 'x' or ',' such as 1x3x224x224"
    if isinstance(text, (tuple, list)):
        dims = list(text)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise DynsplitError(
                f"invalid input shape {tuple(text)!r}: expected positive integers such as (1, 3, 224, 224)"
            )
        return tuple(int(d) for d in dims)
    if not isinstance(text, str):
        raise DynsplitError(f"invalid input shape {text!r}: {expected}")
    body = text.strip().strip("()[]").strip()
    pieces = _SHAPE_SEPARATORS.split(body) if body else []
    if not pieces or not all(p.isdigit() and int(p) > 0 for p in pieces):
        raise DynsplitError(f"invalid input shape '{text}': {expected}")
    return tuple(int(p) for p in pieces)
