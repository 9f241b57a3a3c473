"""Profiles shipped with the package and the resolution of the env's ``profile``/``model`` arguments."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.profile import Profile, load_profile

DEFAULT_MODEL = "mobilenet_v3_large"


def bundled_profiles_dir() -> Path:
    """Folder of the profiles shipped inside the package (``envs/data/profiles``)."""
    return Path(str(resources.files("dynsplit.envs") / "data" / "profiles"))


def bundled_profile_models() -> list[str]:
    """Models that have a bundled profile."""
    folder = bundled_profiles_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def resolve_profile(profile: Profile | str | os.PathLike[str] | None, model: str | None = None) -> Profile:
    """Turn the env's ``profile``/``model`` arguments into a :class:`Profile`.

    ``profile`` may be a :class:`Profile`, a path, or ``None`` (the bundled profile of ``model``, or of
    :data:`DEFAULT_MODEL` when ``model`` is ``None`` too). With both given, the profile must be ``model``'s.
    """
    if isinstance(profile, Profile):
        if model is not None and profile.model != model:
            raise DynsplitError(f"the profile given is for model '{profile.model}', not '{model}'")
        return profile
    if profile is not None:
        return load_profile(profile, model=model)
    name = model or DEFAULT_MODEL
    path = bundled_profiles_dir() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(bundled_profile_models()) or "none"
        raise DynsplitError(
            f"no bundled profile for model '{name}' (bundled: {known}); measure one with "
            f"`dynsplit profile {name} -o {name}.json` and pass profile={name}.json"
        )
    return load_profile(path, model=name)
