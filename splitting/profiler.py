"""Measure a profile by really running heads and tails (DESIGN §1.3).

Speed: candidates of a split graph form a chain ``input -> z_1 -> z_2 -> ... -> output``, so instead of
timing every head and every tail separately (quadratic in the number of candidates) the profiler times
each *segment* ``z_k -> z_{k+1}`` once per batch size and sums them: ``head_j = sum of segments before j``,
``tail_j = sum of segments after j``. The sum is checked against the whole model, timed the same way
(``device.chain_over_full`` / ``server.chain_over_full`` in the metadata; close to 1).

Roles: ``device`` measures heads and encoders with the device's thread count (default 1) and scales them
by ``slowdown`` (an emulated, slower end device when both roles run on one machine); ``server`` measures
decoders and tails for every batch size on the server (CUDA when available, else all CPU threads);
``both`` does both in one process. Every time is the median of ``repeats`` runs after ``warmup`` runs.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.fx

from .codecs import get_codec
from .errors import DynsplitError, did_you_mean
from .graph import Candidate, SplitGraph
from .inputs import random_images, to_model_input
from .profile import CandidateProfile, Profile

ROLES = ("device", "server", "both")
DEFAULT_DEVICE_SLOWDOWN = 10.0
"""Default slowdown of the emulated device: one thread of this host, times 10 — roughly an embedded
ARM board (Raspberry-Pi class) against one x86 server core, the regime in which splitting pays off."""
DEFAULT_BATCH_SIZES = (1, 2, 4, 8)
DEFAULT_CODECS = ("raw", "float16", "int8")


@dataclass(frozen=True)
class ProfilerOptions:
    """Options of :func:`profile_graph`.

    Attributes:
        codecs: codec specs to measure (bytes, encode and decode time).
        batch_sizes: server batch sizes to time tails at.
        role: ``"device"``, ``"server"`` or ``"both"``.
        device_slowdown: factor applied to device times (1.0 on a real device).
        device_threads: torch threads for device timings.
        server_threads: torch threads for server timings on CPU (``None``: all cores).
        server_device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        repeats: timed runs per measurement (median reported).
        warmup: untimed runs before them.
        seed: seed of the random input images.
    """

    codecs: Sequence[str] = DEFAULT_CODECS
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    role: str = "both"
    device_slowdown: float = DEFAULT_DEVICE_SLOWDOWN
    device_threads: int = 1
    server_threads: int | None = None
    server_device: str = "auto"
    repeats: int = 7
    warmup: int = 2
    seed: int = 0


def _interleaved_medians(
    fns: Sequence[Callable[[], object]], repeats: int, warmup: int, sync: Callable[[], None]
) -> list[float]:
    """Median wall time (seconds) of each function, timed round-robin.

    Timing every function once per round (instead of all repeats of one, then the next) spreads the noise
    of a shared machine evenly over all of them, so that sums and ratios of medians stay unbiased.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            sync()
            samples[i].append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def _truncate(module: torch.nn.Module, node_name: str) -> torch.fx.GraphModule | None:
    """A copy of fx ``module`` that returns the value of ``node_name`` (``None`` if there is no such node)."""
    if not isinstance(module, torch.fx.GraphModule):
        return None
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    found = False
    for node in module.graph.nodes:
        if node.op == "output":
            break
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node.name == node_name:
            graph.output(env[node])
            found = True
            break
    if not found:
        return None
    segment = torch.fx.GraphModule(module, graph)
    segment.graph.eliminate_dead_code()
    segment.delete_all_unused_submodules()
    segment.recompile()
    segment.eval()
    return segment


class _Segments:
    """Modules ``z_k -> z_{k+1}`` between consecutive split candidates, with a safe fallback."""

    def __init__(self, graph: SplitGraph) -> None:
        self.graph = graph
        splits = [c for c in graph.candidates if c.kind == "split"]
        self.splits = splits
        self.modules: list[torch.nn.Module] = []
        previous: Candidate | None = None
        for cand in [*splits, None]:
            if previous is None and cand is not None:
                module = graph.head(cand)
            elif cand is None:
                module = graph.tail(previous) if previous is not None else graph.graph_module
            else:
                module = _truncate(graph.tail(previous), cand.node)
                if module is None:  # node renamed in the tail module: fall back to the exact composition
                    raise DynsplitError(f"internal: cannot cut segment at {cand.node}")
            self.modules.append(module)
            previous = cand

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The transmitted tensor of every split candidate for model input ``x``, in order."""
        out = []
        with torch.no_grad():
            z = x
            for module in self.modules[:-1]:
                z = module(z)
                out.append(z)
        return out


def _host_meta(threads: int, repeats: int, warmup: int) -> dict:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _resolve_server_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise DynsplitError(f"unknown server device '{name}'; expected auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DynsplitError(f"server device '{name}' asked for, but torch sees no CUDA device here")
    return torch.device(name)


def profile_graph(
    graph: SplitGraph,
    options: ProfilerOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Measure ``graph`` and return its :class:`Profile` (see the module docstring)."""
    opts = options or ProfilerOptions()
    if opts.role not in ROLES:
        raise DynsplitError(f"unknown role '{opts.role}'; expected one of {', '.join(ROLES)}{did_you_mean(opts.role, ROLES)}")
    if opts.repeats < 1 or opts.warmup < 0:
        raise DynsplitError("repeats must be >= 1 and warmup >= 0")
    if opts.device_slowdown <= 0:
        raise DynsplitError(f"device slowdown must be > 0, got {opts.device_slowdown}")
    batch_sizes = tuple(sorted({int(b) for b in opts.batch_sizes}))
    if not batch_sizes or batch_sizes[0] < 1:
        raise DynsplitError(f"batch sizes must be positive integers, got {list(opts.batch_sizes)}")
    codecs = [get_codec(spec) for spec in opts.codecs]
    say = progress or (lambda _msg: None)
    do_device = opts.role in ("device", "both")
    do_server = opts.role in ("server", "both")

    input_shape = tuple(graph.input_shape)
    images = random_images(input_shape, seed=opts.seed)
    x = to_model_input(images)
    segments = _Segments(graph)
    with torch.no_grad():
        features = segments.features(x)
    n_seg = len(segments.modules)
    old_threads = torch.get_num_threads()

    # Wire sizes and codec times on the actual tensors of every candidate (input image for offload).
    sent = [images, *features]  # offload, then each split candidate
    nbytes = [{c.spec: len(c.encode(t)) for c in codecs} for t in sent]
    frames = [{c.spec: c.encode(t) for c in codecs} for t in sent]

    device_meta: dict = {}
    seg_device = [0.0] * n_seg
    pre_device = 0.0
    encode_s = [{c.spec: 0.0 for c in codecs} for _ in sent]
    if do_device:
        torch.set_num_threads(opts.device_threads)
        say(f"device: {n_seg} segments, 1 thread, slowdown {opts.device_slowdown:g}")
        nosync = lambda: None  # noqa: E731
        with torch.no_grad():
            inputs = [x, *features]
            fns: list[Callable[[], object]] = [lambda: to_model_input(images)]
            fns += [lambda m=module, z=inputs[k]: m(z) for k, module in enumerate(segments.modules)]
            fns.append(lambda: graph.graph_module(x))
            fns += [lambda c=codec, t=tensor: c.encode(t) for tensor in sent for codec in codecs]
            times = _interleaved_medians(fns, opts.repeats, opts.warmup, nosync)
        pre_device, seg_device, full = times[0], times[1:1 + n_seg], times[1 + n_seg]
        codec_times = iter(times[2 + n_seg:])
        for i in range(len(sent)):
            for codec in codecs:
                encode_s[i][codec.spec] = opts.device_slowdown * next(codec_times)
        device_meta = _host_meta(opts.device_threads, opts.repeats, opts.warmup)
        device_meta.update(
            slowdown=opts.device_slowdown,
            emulated=opts.role == "both",
            full_model_s=full * opts.device_slowdown,
            chain_over_full=(pre_device + sum(seg_device)) / (pre_device + full) if full > 0 else None,
        )

    server_meta: dict = {}
    seg_server = {b: [0.0] * n_seg for b in batch_sizes}
    pre_server = dict.fromkeys(batch_sizes, 0.0)
    decode_s = [{c.spec: 0.0 for c in codecs} for _ in sent]
    if do_server:
        device = _resolve_server_device(opts.server_device)
        threads = opts.server_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        modules = [m.to(device) for m in segments.modules]
        say(f"server: {n_seg} segments x batch sizes {list(batch_sizes)} on {device}")
        with torch.no_grad():
            for b in batch_sizes:
                batch_images = images.repeat(b, *([1] * (images.dim() - 1))).to(device)
                z = to_model_input(batch_images)
                seg_inputs = []
                for module in modules:
                    seg_inputs.append(z)
                    z = module(z)
                fns = [lambda bi=batch_images: to_model_input(bi)]
                fns += [lambda m=module, zz=seg_inputs[k]: m(zz) for k, module in enumerate(modules)]
                if b == batch_sizes[0]:
                    full_model = graph.graph_module.to(device)
                    xb = to_model_input(batch_images)
                    fns.append(lambda m=full_model, xx=xb: m(xx))
                    fns += [lambda c=codec, f=frames[i][codec.spec]: c.decode(f)
                            for i in range(len(sent)) for codec in codecs]
                times = _interleaved_medians(fns, opts.repeats, opts.warmup, sync)
                pre_server[b], seg_server[b] = times[0], times[1:1 + n_seg]
                if b == batch_sizes[0]:
                    full = times[1 + n_seg]
                    codec_times = iter(times[2 + n_seg:])
                    for i in range(len(sent)):
                        for codec in codecs:
                            decode_s[i][codec.spec] = next(codec_times)
            graph.graph_module.to("cpu")
        for m in segments.modules:
            m.to("cpu")
        server_meta = _host_meta(threads, opts.repeats, opts.warmup)
        server_meta.update(
            device=str(device),
            cuda_name=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            full_model_s=full,
            chain_over_full=((pre_server[batch_sizes[0]] + sum(seg_server[batch_sizes[0]])) / (pre_server[batch_sizes[0]] + full)
                             if full > 0 else None),
            full_model_batch=batch_sizes[0],
        )
    torch.set_num_threads(old_threads)

    slow = opts.device_slowdown
    candidates = []
    for cand in graph.candidates:
        if cand.kind == "offload":
            sent_i, n_dev_seg = 0, None
        elif cand.kind == "split":
            sent_i = 1 + segments.splits.index(cand)
            n_dev_seg = sent_i
        else:
            sent_i, n_dev_seg = None, n_seg
        if n_dev_seg is None:
            head_s = 0.0
        else:
            head_s = slow * (pre_device + sum(seg_device[:n_dev_seg])) if do_device else 0.0
        if cand.kind == "local":
            tail = dict.fromkeys(batch_sizes, 0.0)
            zeros = {c.spec: 0 for c in codecs}
            candidates.append(CandidateProfile(
                index=cand.index, name=cand.name, kind=cand.kind, node=cand.node, shape=tuple(cand.shape),
                dtype=cand.dtype, elements=cand.elements, bytes=zeros, device_head_s=head_s,
                device_encode_s={c.spec: 0.0 for c in codecs}, server_decode_s={c.spec: 0.0 for c in codecs},
                server_tail_s=tail))
            continue
        first_server_seg = 0 if cand.kind == "offload" else sent_i
        tail = {}
        for b in batch_sizes:
            pre = pre_server[b] if cand.kind == "offload" else 0.0
            tail[b] = pre + sum(seg_server[b][first_server_seg:]) if do_server else 0.0
        candidates.append(CandidateProfile(
            index=cand.index, name=cand.name, kind=cand.kind, node=cand.node, shape=tuple(cand.shape),
            dtype=cand.dtype, elements=cand.elements, bytes=dict(nbytes[sent_i]), device_head_s=head_s,
            device_encode_s=dict(encode_s[sent_i]), server_decode_s=dict(decode_s[sent_i]), server_tail_s=tail))
    return Profile(
        model=graph.model_name or type(graph.graph_module).__name__,
        input_shape=input_shape,
        compressive_only=bool(getattr(graph, "compressive_only", True)),
        codecs=tuple(c.spec for c in codecs),
        batch_sizes=batch_sizes,
        candidates=tuple(candidates),
        device={"role_measured": do_device, **device_meta},
        server={"role_measured": do_server, **server_meta},
    )
