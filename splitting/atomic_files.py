"""Atomic file output: nothing half-written is ever seen under a result's name.

Everything dynsplit writes (profiles, results, figures, models, benchmark JSON) goes through a temporary
file in the destination folder that is renamed onto the final name only once complete; a crash or Ctrl-C
leaves the previous file (or none) and no temporary behind. The file gets the permissions a new file
would get under the current umask (``tempfile.mkstemp`` alone would leave it 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def default_file_mode() -> int:
    """Permission bits a newly created file gets under the current umask (``0666 & ~umask``)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) for a writer that takes a file name; on
    success it is renamed to ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8",
                  newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``); rename it onto
    ``path`` when the block ends without an error."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as handle:
            yield handle


def write_json_atomic(path: str | os.PathLike[str], data: Any, indent: int = 1) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    with atomic_output(path) as handle:
        json.dump(data, handle, indent=indent)
        handle.write("\n")
    return Path(path)
