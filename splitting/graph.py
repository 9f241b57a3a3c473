"""Split points, natural bottlenecks and head/tail modules of a traced model (DESIGN 1.1).

The model is traced with ``torch.fx`` and its shapes propagated on one random input. Walking the graph in
topological order, a **split point** is a position where exactly one value produced so far is still needed
by a later node (parameters and buffers, i.e. ``get_attr`` nodes, do not count; the input counts while it is
still used; non-tensor values such as sizes read from a tensor count too, since they would have to cross
the cut as well) and that value is a tensor. Cutting there gives a head ``x -> z`` and a tail ``z -> y``
with ``tail(head(x))`` bit-identical to ``model(x)``.

A split point is a **natural bottleneck** when its tensor has fewer elements than the input. With
``compressive_only`` a bottleneck is kept only when it is smaller than every earlier kept one. The
controller's actions (:class:`Candidate`) are ``offload`` (send the raw input), the kept bottlenecks in
order, and ``local`` (send nothing).

Units: shapes and ``elements`` are element counts; ``dtype`` is the torch dtype name without ``torch.``.
Bytes on the wire are computed elsewhere (codecs), from ``elements`` and ``dtype``.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .errors import DynsplitError, did_you_mean

__all__ = ["Candidate", "SplitGraph", "SplitPoint", "split_graph_for"]

OFFLOAD = "offload"
LOCAL = "local"


@dataclass(frozen=True)
class SplitPoint:
    """One split point of a traced model.

    ``index`` is its rank among the model's split points (0-based, topological order); ``node`` the fx node
    whose output crosses the cut; ``shape`` that tensor's shape (elements per dimension); ``dtype`` its dtype
    name (``"float32"``); ``elements`` its element count; ``bottleneck`` whether it has fewer elements than
    the input; ``candidate`` whether it was kept as a controller action (after the ``compressive_only``
    filter).
    """

    index: int
    node: str
    shape: tuple[int, ...]
    dtype: str
    elements: int
    bottleneck: bool
    candidate: bool


@dataclass(frozen=True)
class Candidate:
    """One controller action.

    ``index`` is the action id (0 = offload, last = local); ``name`` is ``"offload"``, ``"local"`` or the fx
    node name of the cut; ``kind`` is ``"offload"``, ``"split"`` or ``"local"``; ``node`` the fx node (None for
    offload and local); ``shape``/``dtype``/``elements`` describe what is sent: the input as ``uint8`` for
    offload (a camera image), the cut tensor for a split, nothing (``()``, ``"none"``, 0) for local.
    """

    index: int
    name: str
    kind: str
    node: str | None
    shape: tuple[int, ...]
    dtype: str
    elements: int


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def _class_names(cls: type) -> set[str]:
    """Names a class may be referred to by: ``Name``, ``Outer.Name`` and ``package.module.Name``."""
    return {cls.__name__, cls.__qualname__, f"{cls.__module__}.{cls.__qualname__}"}


def _full_class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _SplitTracer(fx.Tracer):
    """An fx tracer that keeps user-chosen module classes opaque and remembers where tracing failed."""

    def __init__(self, leaf_types: tuple[type, ...], leaf_names: frozenset[str]):
        super().__init__()
        self._leaf_types = leaf_types
        self._leaf_names = leaf_names
        self.failed_module: tuple[str, type] | None = None

    def _is_user_leaf(self, m: torch.nn.Module) -> bool:
        if self._leaf_types and isinstance(m, self._leaf_types):
            return True
        if self._leaf_names:
            return any(_class_names(c) & self._leaf_names for c in type(m).__mro__)
        return False

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return self._is_user_leaf(m) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module sees the exception first
                try:
                    qualname = self.path_of_module(m)
                except NameError:
                    qualname = "?"
                self.failed_module = (qualname, type(m))
            raise


def _user_frame(exc: BaseException) -> str:
    """``file.py:LINE: source`` of the innermost traceback frame outside torch, or ``""``."""
    torch_dir = str(Path(torch.__file__).parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(torch_dir)]
    if not frames:
        return ""
    f = frames[-1]
    line = f" `{f.line.strip()}`" if f.line else ""
    return f"{Path(f.filename).name}:{f.lineno}{line}"


def _keeps_effect(node: fx.Node) -> bool:
    """Dead-code rule: drop unused pure values; keep module calls (as eager would run them) and effects."""
    return node.op == "call_module" or node.is_impure()


def _outputs_equal(a: Any, b: Any) -> bool:
    """Bit-exact equality of two model outputs (tensors, or tuples/lists/dicts of them)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_outputs_equal, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_outputs_equal(a[k], b[k]) for k in a)
    return a == b


class SplitGraph:
    """The split points, natural bottlenecks, candidates and head/tail modules of one model.

    Args:
        model: the model; it is put in eval mode and traced with ``torch.fx``.
        input_shape: the input's shape in elements, batch first, e.g. ``(1, 3, 224, 224)`` or ``"1x3x224x224"``.
        compressive_only: keep a bottleneck as a candidate only if it is smaller than every earlier kept one.
        leaf_modules: module classes (or class names: ``"MyBlock"`` or ``"pkg.mod.MyBlock"``) that fx must
            not trace into; use it for modules with data-dependent control flow. They can't be cut through.
        model_name: name used in messages and :meth:`describe` (default: the model's class name).

    Attributes: ``model_name``, ``input_shape``, ``input_elements``, ``graph_module`` (the traced model),
    ``points`` (every :class:`SplitPoint`), ``candidates`` (every :class:`Candidate`, action id order),
    ``compressive_only``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        input_shape: tuple[int, ...] | str,
        *,
        compressive_only: bool = True,
        leaf_modules: Sequence[type | str] = (),
        model_name: str | None = None,
    ):
        if not isinstance(model, torch.nn.Module):
            raise DynsplitError(f"expected a torch.nn.Module to split, got {type(model).__name__}")
        self.model = model.eval()
        self.model_name = model_name or type(model).__name__
        from .models import parse_input_shape

        if not isinstance(input_shape, (str, tuple, list)):
            input_shape = tuple(input_shape)
        self.input_shape: tuple[int, ...] = parse_input_shape(input_shape)
        self.input_elements = 1
        for d in self.input_shape:
            self.input_elements *= d
        self.compressive_only = bool(compressive_only)
        self.leaf_modules = tuple(leaf_modules)
        self.graph_module = self._trace()
        self._propagate_shapes()
        self._nodes: list[fx.Node] = list(self.graph_module.graph.nodes)
        self._cuts: dict[str, tuple[int, fx.Node]] = {}  # split point node name -> (cut position, node)
        self.points: list[SplitPoint] = []
        self.candidates: list[Candidate] = []
        self._find_points()
        self._cache: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
        self._flat: dict[str, str] | None = None
        self._whole_module: fx.GraphModule | None = None

    # ------------------------------------------------------------------ tracing
    def _leaf_spec(self) -> tuple[tuple[type, ...], frozenset[str]]:
        types: list[type] = []
        names: set[str] = set()
        present: set[type] = {type(m) for m in self.model.modules()}
        present_names: set[str] = set()
        for cls in present:
            for c in cls.__mro__:
                present_names |= _class_names(c)
        for leaf in self.leaf_modules:
            if isinstance(leaf, type) and issubclass(leaf, torch.nn.Module):
                if not any(issubclass(c, leaf) for c in present):
                    raise DynsplitError(
                        f"leaf module {_full_class_name(leaf)} matches no submodule of model '{self.model_name}'"
                    )
                types.append(leaf)
            elif isinstance(leaf, str) and leaf.strip():
                name = leaf.strip()
                if name not in present_names:
                    choices = sorted({c.__name__ for c in present})
                    raise DynsplitError(
                        f"leaf module '{name}' matches no submodule class of model '{self.model_name}'"
                        f"{did_you_mean(name, choices)}"
                    )
                names.add(name)
            else:
                raise DynsplitError(
                    f"invalid leaf module {leaf!r}: expected an nn.Module class or a class name such as "
                    "'pkg.module.MyBlock'"
                )
        return tuple(types), frozenset(names)

    def _trace(self) -> fx.GraphModule:
        types, names = self._leaf_spec()
        tracer = _SplitTracer(types, names)
        try:
            graph = tracer.trace(self.model)
        except Exception as exc:
            where = " in the model's own forward"
            suggestion = (
                "move the untraceable code into a submodule and mark its class as a leaf with leaf_modules "
                "(CLI: --leaf-module)"
            )
            if tracer.failed_module is not None:
                qualname, cls = tracer.failed_module
                full = _full_class_name(cls)
                where = f" in module '{qualname}' ({full})"
                suggestion = f"mark it as a leaf with leaf_modules=['{full}'] (CLI: --leaf-module {full})"
            frame = _user_frame(exc)
            at = f" at {frame}" if frame else ""
            raise DynsplitError(
                f"cannot trace model '{self.model_name}' with torch.fx{where}{at}: "
                f"{_first_line(exc)}; {suggestion}"
            ) from exc
        inputs = [n for n in graph.nodes if n.op == "placeholder" and not n.args]
        if len(inputs) != 1:
            raise DynsplitError(
                f"model '{self.model_name}' takes {len(inputs)} required inputs; expected exactly one tensor input"
            )
        return fx.GraphModule(tracer.root, graph, class_name=type(self.model).__name__)

    def _propagate_shapes(self) -> None:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.input_shape, generator=gen)
        sink = io.StringIO()  # ShapeProp prints a traceback of its own before raising
        try:
            with torch.no_grad(), contextlib.redirect_stderr(sink):
                ShapeProp(self.graph_module).propagate(x)
        except Exception as exc:
            raise DynsplitError(
                f"model '{self.model_name}' rejects input shape {self.input_shape}: "
                f"{_first_line(_root_cause(exc))}"
            ) from exc

    # ------------------------------------------------------------------ split points
    def _find_points(self) -> None:
        nodes = self._nodes
        pos = {n: i for i, n in enumerate(nodes)}
        output_pos = next(i for i, n in enumerate(nodes) if n.op == "output")
        last_use = [max((pos[u] for u in n.users), default=-1) for n in nodes]
        expiring: dict[int, list[fx.Node]] = {}
        live: set[fx.Node] = set()
        found: list[tuple[int, fx.Node]] = []
        seen: set[fx.Node] = set()
        for i, n in enumerate(nodes[:output_pos]):
            for dead in expiring.pop(i, ()):
                live.discard(dead)
            if n.op != "get_attr" and last_use[i] > i:
                live.add(n)
                expiring.setdefault(last_use[i], []).append(n)
            if len(live) != 1:
                continue
            (z,) = live
            if (
                z in seen
                or z.op == "placeholder"  # the input itself: that is offload
                or last_use[pos[z]] == output_pos  # the final output: that is local
                or not isinstance(z.meta.get("tensor_meta"), TensorMetadata)
            ):
                continue
            seen.add(z)
            found.append((i, z))

        smallest_kept: int | None = None
        for k, (i, z) in enumerate(found):
            meta: TensorMetadata = z.meta["tensor_meta"]
            shape = tuple(int(d) for d in meta.shape)
            elements = 1
            for d in shape:
                elements *= d
            bottleneck = elements < self.input_elements
            keep = bottleneck and (
                not self.compressive_only or smallest_kept is None or elements < smallest_kept
            )
            if keep:
                smallest_kept = elements
            self.points.append(
                SplitPoint(k, z.name, shape, _dtype_name(meta.dtype), elements, bottleneck, keep)
            )
            self._cuts[z.name] = (i, z)

        cands = [Candidate(0, OFFLOAD, OFFLOAD, None, self.input_shape, "uint8", self.input_elements)]
        for p in self.points:
            if p.candidate:
                cands.append(Candidate(len(cands), p.node, "split", p.node, p.shape, p.dtype, p.elements))
        cands.append(Candidate(len(cands), LOCAL, LOCAL, None, (), "none", 0))
        self.candidates = cands

    @property
    def candidate_names(self) -> list[str]:
        """Candidate names in action id order."""
        return [c.name for c in self.candidates]

    def candidate(self, name_or_index: str | int) -> Candidate:
        """Return the candidate with this name or action id; :class:`DynsplitError` if there is none."""
        if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
            if 0 <= name_or_index < len(self.candidates):
                return self.candidates[name_or_index]
            raise DynsplitError(
                f"candidate index {name_or_index} out of range for model '{self.model_name}': "
                f"expected 0..{len(self.candidates) - 1}"
            )
        for c in self.candidates:
            if c.name == name_or_index:
                return c
        names = self.candidate_names
        raise DynsplitError(
            f"unknown candidate '{name_or_index}' for model '{self.model_name}'"
            f"{did_you_mean(str(name_or_index), names)}: expected one of {', '.join(names)}"
        )

    def _key(self, c: Candidate | SplitPoint | str | int) -> str:
        if isinstance(c, SplitPoint):
            key = c.node
        elif isinstance(c, Candidate):
            key = c.name
        elif isinstance(c, str) and (c in self._cuts or c in (OFFLOAD, LOCAL)):
            key = c
        else:
            key = self.candidate(c).name
        if key not in self._cuts and key not in (OFFLOAD, LOCAL):
            raise DynsplitError(f"'{key}' is not a split point of model '{self.model_name}'")
        return key

    # ------------------------------------------------------------------ head and tail modules
    def _flat_targets(self) -> dict[str, str]:
        """A flat attribute name for every module/attribute target of the traced graph.

        Head and tail modules hold their submodules under these flat names (``layer1.0.conv1`` becomes
        ``layer1_0_conv1``), so that generated code reaches each with one attribute lookup instead of one
        per nesting level: that keeps the Python overhead of an fx module at or below eager's.
        """
        reserved = set(dir(fx.GraphModule))
        flat: dict[str, str] = {}
        used: set[str] = set()
        for n in self._nodes:
            if n.op not in ("call_module", "get_attr") or n.target in flat:
                continue
            base = str(n.target).replace(".", "_")
            if not base.isidentifier() or base in reserved:
                base = f"m_{base}"
            name, k = base, 1
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            flat[n.target] = name
        return flat

    def _graph_module(self, graph: fx.Graph, class_name: str) -> fx.GraphModule:
        """Dead-code-eliminate ``graph`` and wrap it in a GraphModule holding only what it references."""
        graph.eliminate_dead_code(is_impure_node=_keeps_effect)
        if self._flat is None:
            self._flat = self._flat_targets()
        root: dict[str, Any] = {}
        for n in graph.nodes:
            if n.op in ("call_module", "get_attr"):
                obj: Any = self.graph_module
                for piece in str(n.target).split("."):
                    obj = getattr(obj, piece)
                n.target = self._flat[n.target]
                root[n.target] = obj
        return fx.GraphModule(root, graph, class_name=class_name).eval()

    def _whole(self) -> fx.GraphModule:
        """The whole model as a (flattened) GraphModule: the tail of offload and the head of local."""
        if self._whole_module is None:
            graph = fx.Graph()
            env: dict[fx.Node, fx.Node] = {}
            for n in self._nodes:
                env[n] = graph.node_copy(n, lambda a: env[a])
            self._whole_module = self._graph_module(graph, type(self.model).__name__)
        return self._whole_module

    def _build(self, key: str) -> tuple[torch.nn.Module, torch.nn.Module]:
        if key == OFFLOAD:
            return torch.nn.Identity().eval(), self._whole()
        if key == LOCAL:
            return self._whole(), torch.nn.Identity().eval()
        cut, z = self._cuts[key]
        nodes = self._nodes
        cls = type(self.model).__name__

        head_graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for n in nodes[: cut + 1]:
            env[n] = head_graph.node_copy(n, lambda a: env[a])
        head_graph.output(env[z])

        tail_graph = fx.Graph()
        tenv: dict[fx.Node, fx.Node] = {z: tail_graph.placeholder(z.name)}
        tenv[z].meta = dict(z.meta)

        def arg(a: fx.Node) -> fx.Node:
            if a not in tenv:
                if a.op != "get_attr":  # cannot happen at a split point: only z is live
                    raise RuntimeError(f"value '{a.name}' crosses the cut at '{key}'")
                tenv[a] = tail_graph.node_copy(a)
            return tenv[a]

        for n in nodes[cut + 1 :]:
            tenv[n] = tail_graph.node_copy(n, arg)
        return self._graph_module(head_graph, f"{cls}Head"), self._graph_module(tail_graph, f"{cls}Tail")

    def split(self, c: Candidate | SplitPoint | str | int) -> tuple[torch.nn.Module, torch.nn.Module]:
        """Return ``(head, tail)`` for a candidate or split point (object, name, or candidate action id).

        ``head`` maps the input to the tensor sent (identity for offload); ``tail`` maps that tensor to the
        model output (identity for local). Both share parameters with the model and hold only those they
        use. Modules are built once and cached.
        """
        key = self._key(c)
        if key not in self._cache:
            self._cache[key] = self._build(key)
        return self._cache[key]

    def head(self, c: Candidate | SplitPoint | str | int) -> torch.nn.Module:
        """The head module (input -> sent tensor) for ``c``; see :meth:`split`."""
        return self.split(c)[0]

    def tail(self, c: Candidate | SplitPoint | str | int) -> torch.nn.Module:
        """The tail module (sent tensor -> output) for ``c``; see :meth:`split`."""
        return self.split(c)[1]

    # ------------------------------------------------------------------ checks and reports
    def verify(self, n_inputs: int = 1, seed: int = 0, points: str = "all") -> dict:
        """Check ``tail(head(x))`` against ``model(x)`` bit-exactly (``torch.equal``) on random inputs.

        ``points="all"`` checks every split point plus offload and local; ``"candidates"`` every candidate.
        ``n_inputs`` standard-normal inputs of ``input_shape`` are drawn from ``seed``. Returns
        ``{"checked": number of cuts checked, "n_inputs", "exact": number of them bit-exact on every input,
        "mismatches": [names]}`` (with ``"all"``, ``checked`` is the split points plus offload and local).
        """
        if points not in ("all", "candidates"):
            raise DynsplitError(f"invalid points '{points}': expected 'all' or 'candidates'")
        if not isinstance(n_inputs, int) or isinstance(n_inputs, bool) or n_inputs < 1:
            raise DynsplitError(f"invalid n_inputs {n_inputs!r}: expected a positive integer")
        if points == "all":
            keys = [OFFLOAD] + [p.node for p in self.points] + [LOCAL]
        else:
            keys = self.candidate_names
        gen = torch.Generator().manual_seed(int(seed))
        mismatches: list[str] = []
        with torch.no_grad():
            for _ in range(n_inputs):
                x = torch.randn(self.input_shape, generator=gen)
                ref = self.model(x.clone())
                for key in keys:
                    if key in mismatches:
                        continue
                    head, tail = self.split(key)
                    if not _outputs_equal(tail(head(x.clone())), ref):
                        mismatches.append(key)
        return {"checked": len(keys), "n_inputs": n_inputs, "exact": len(keys) - len(mismatches),
                "mismatches": mismatches}

    def describe(self, verify_report: dict | None = None) -> dict:
        """A JSON-ready summary: model, input shape and elements, the filter, every point, candidate names,
        and, given a :meth:`verify` report, its ``checked``, ``exact`` and ``mismatches``."""
        out: dict[str, Any] = {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "input_elements": self.input_elements,
            "compressive_only": self.compressive_only,
            "points": [
                {
                    "index": p.index,
                    "node": p.node,
                    "shape": list(p.shape),
                    "dtype": p.dtype,
                    "elements": p.elements,
                    "bottleneck": p.bottleneck,
                    "candidate": p.candidate,
                }
                for p in self.points
            ],
            "candidates": self.candidate_names,
        }
        if verify_report is not None:
            for k in ("checked", "exact", "mismatches"):
                out[k] = verify_report[k]
        return out

    def __repr__(self) -> str:
        n_bottlenecks = sum(p.bottleneck for p in self.points)
        return (
            f"SplitGraph({self.model_name}, input_shape={self.input_shape}, points={len(self.points)}, "
            f"bottlenecks={n_bottlenecks}, candidates={len(self.candidates)})"
        )


def split_graph_for(
    spec: str,
    input_shape: tuple[int, ...] | str | None = None,
    compressive_only: bool = True,
    leaf_modules: Sequence[type | str] = (),
) -> SplitGraph:
    """Build the model named by ``spec`` (see :func:`dynsplit.splitting.models.build_model`) and split it.

    ``input_shape`` (elements, batch first; a tuple or a string such as ``"1x3x224x224"``) defaults to
    :func:`dynsplit.splitting.models.default_input_shape`.
    """
    from .models import build_model, default_input_shape, parse_input_shape

    shape = default_input_shape(spec) if input_shape is None else parse_input_shape(input_shape)
    model = build_model(spec)
    return SplitGraph(
        model, shape, compressive_only=compressive_only, leaf_modules=leaf_modules, model_name=spec
    )
