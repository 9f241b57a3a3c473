"""Distortion of the model output caused by a lossy codec at each split candidate.

Splitting at a natural bottleneck is exact (``tail(head(x))`` equals the model's output bit for bit), but a
lossy codec (``float16``, ``int8``) alters the tensor that crosses the network and therefore the logits.
:func:`measure_distortion` measures that — it is never assumed — by really running head, codec and tail
on every input:

* ``rel_l2``: ``||Y_hat - Y|| / ||Y||`` (Frobenius norms over the whole batch of logits, dimensionless);
* ``rel_l2_max``: the largest per-input relative L2 error;
* ``top1_agreement``: fraction of inputs whose arg-max class is unchanged (1.0 = all agree);
* ``bytes``: mean frame length per input in bytes (each input is encoded on its own, as one request is).

Every input is encoded separately (batch of one), so ``int8`` gets its own scale per request, as the
device would send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .codecs import get_codec
from .errors import DynsplitError, did_you_mean
from .inputs import to_model_input

__all__ = ["measure_distortion"]


def _resolve_candidates(graph: Any, candidates: Iterable[Any] | None) -> list[Any]:
    """Candidates of ``graph`` selected by object, name or index (all of them when ``None``)."""
    all_cands = list(graph.candidates)
    if candidates is None:
        return all_cands
    by_name = {c.name: c for c in all_cands}
    chosen = []
    for item in candidates:
        if isinstance(item, str):
            if item not in by_name:
                raise DynsplitError(
                    f"unknown candidate '{item}'; expected one of {', '.join(by_name)}{did_you_mean(item, by_name)}"
                )
            chosen.append(by_name[item])
        elif isinstance(item, int):
            if not 0 <= item < len(all_cands):
                raise DynsplitError(f"candidate index {item} out of range; expected 0..{len(all_cands) - 1}")
            chosen.append(all_cands[item])
        else:
            chosen.append(item)
    return chosen


def _logits(output: Any) -> torch.Tensor:
    """The logits tensor of a model output (the first element of a tuple or list), as float64 (N, -1)."""
    if isinstance(output, list | tuple) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model output must be a tensor, got {type(output).__name__}")
    return output.detach().to("cpu", torch.float64).reshape(output.shape[0], -1)


def _uint8_surrogate(x: torch.Tensor) -> torch.Tensor:
    """A uint8 image standing in for a floating input: ``x`` linearly rescaled to 0..255."""
    lo, hi = float(x.min()), float(x.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return x.sub(lo).mul_(scale).round_().clamp_(0, 255).to(torch.uint8)


def _row(cand: Any, codec_spec: str, n: int, nbytes: Sequence[int], exact: bool, **metrics: float) -> dict:
    return {
        "index": int(cand.index),
        "name": str(cand.name),
        "kind": str(cand.kind),
        "codec": codec_spec,
        "inputs": n,
        "bytes": sum(nbytes) / n,
        "bytes_exact": exact,
        **metrics,
    }


def measure_distortion(
    graph: Any,
    codec_spec: str,
    inputs: torch.Tensor,
    candidates: Iterable[Any] | None = None,
) -> list[dict]:
    """Measure the output distortion and wire size of ``codec_spec`` at each candidate of ``graph``.

    Args:
        graph: a :class:`dynsplit.splitting.graph.SplitGraph` (anything with ``candidates``,
            ``head(c)``, ``tail(c)`` and ``graph_module``).
        codec_spec: codec spec, e.g. ``"int8+zstd"``.
        inputs: a batch of inputs (N, ...). uint8 images (recommended) are converted with
            :func:`dynsplit.splitting.inputs.to_model_input`, and the ``offload`` action sends them as they
            are. A floating batch is taken as model input; ``offload`` then sends a uint8 image of the same
            shape, whose size is exact for uncompressed codecs and, with a compressor, measured on the
            input rescaled to 0..255 (``bytes_exact`` False).
        candidates: candidates to measure, as Candidate objects, names or indices; default every
            candidate of ``graph``. ``local`` sends nothing and is skipped.

    Returns:
        One dict per measured candidate, in the given order, with keys ``index``, ``name``, ``kind``,
        ``codec``, ``inputs`` (N), ``bytes`` (mean frame bytes per input), ``bytes_exact``, ``rel_l2``,
        ``rel_l2_max`` and ``top1_agreement`` (see the module docstring). ``offload`` sends the uint8 image
        losslessly under every codec: its distortion is 0 and its agreement 1.
    """
    codec = get_codec(codec_spec)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise DynsplitError(f"inputs must be a non-empty batch tensor (N, ...), got {got}")
    n = int(inputs.shape[0])
    images = inputs if inputs.dtype == torch.uint8 else None
    x = to_model_input(inputs) if images is not None else inputs
    rows = []
    with torch.no_grad():
        y = _logits(graph.graph_module(x))
        y_norm = torch.linalg.vector_norm(y)
        y_row_norm = torch.linalg.vector_norm(y, dim=1)
        for cand in _resolve_candidates(graph, candidates):
            if cand.kind == "local":
                continue
            if cand.kind == "offload":
                exact = images is not None or codec.compressor is None
                if images is not None:
                    nbytes = [codec.wire_bytes(images[i : i + 1]) for i in range(n)]
                elif codec.compressor is None:
                    nbytes = [codec.nominal_bytes((1, *inputs.shape[1:]), torch.uint8)] * n
                else:
                    nbytes = [codec.wire_bytes(_uint8_surrogate(inputs[i : i + 1])) for i in range(n)]
                rows.append(
                    _row(cand, codec.spec, n, nbytes, exact, rel_l2=0.0, rel_l2_max=0.0, top1_agreement=1.0)
                )
                continue
            z = graph.head(cand)(x)
            if not isinstance(z, torch.Tensor):
                raise TypeError(f"head of candidate '{cand.name}' returned {type(z).__name__}, not a tensor")
            frames = [codec.encode(z[i : i + 1]) for i in range(n)]
            z_hat = torch.cat([codec.decode(f) for f in frames]).to(z.device)
            y_hat = _logits(graph.tail(cand)(z_hat))
            diff = y_hat - y
            rel = _ratio(torch.linalg.vector_norm(diff), y_norm)
            rel_rows = [
                _ratio(d, r) for d, r in zip(torch.linalg.vector_norm(diff, dim=1), y_row_norm, strict=True)
            ]
            agree = (y_hat.argmax(dim=1) == y.argmax(dim=1)).double().mean()
            rows.append(
                _row(
                    cand,
                    codec.spec,
                    n,
                    [len(f) for f in frames],
                    True,
                    rel_l2=rel,
                    rel_l2_max=max(rel_rows),
                    top1_agreement=float(agree),
                )
            )
    return rows


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    """``num / den`` as a float; 0 when both are 0, infinity when only ``den`` is."""
    num_f, den_f = float(num), float(den)
    if den_f == 0.0:
        return 0.0 if num_f == 0.0 else float("inf")
    return num_f / den_f
