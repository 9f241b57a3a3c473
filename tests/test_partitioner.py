"""The bottleneck partitioner: split points, candidates, head/tail modules (DESIGN 1.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.graph import Candidate, SplitGraph, SplitPoint, split_graph_for

TESTS_DIR = Path(__file__).resolve().parent

# (split points, natural bottlenecks before the compressive_only filter) at 1x3x224x224, from DESIGN 1.1.
REFERENCE_COUNTS = {
    "resnet18": (22, 14),
    "resnet50": (38, 8),
    "mobilenet_v2": (72, 52),
    "mobilenet_v3_large": (64, 48),
    "efficientnet_b0": (78, 56),
    "efficientnet_v2_s": (81, 52),
    "vgg16": (39, 16),
    "densenet121": (24, 9),
    "regnet_y_400mf": (37, 32),
    "convnext_tiny": (39, 22),
    "vit_b_16": (31, 1),
    "swin_t": (40, 24),
}
FAST_COUNT_MODELS = ["resnet18", "resnet50", "mobilenet_v2"]
EXACT_MODELS = ["resnet18", "mobilenet_v3_large", "squeezenet1_0"]

_GRAPHS: dict[tuple, SplitGraph] = {}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def graph_for(name: str, **kwargs) -> SplitGraph:
    """Build (once per test session) the split graph of a torchvision model at 1x3x224x224."""
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _GRAPHS:
        _GRAPHS[key] = split_graph_for(name, **kwargs)
    return _GRAPHS[key]


def counts(g: SplitGraph) -> tuple[int, int]:
    return len(g.points), sum(p.bottleneck for p in g.points)


# ---------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", EXACT_MODELS)
def test_head_then_tail_is_bit_exact_at_every_split_point(name):
    g = graph_for(name)
    assert g.points, "expected at least one split point"
    x = torch.randn(g.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = g.model(x)
        for point in g.points:
            head, tail = g.split(point)
            z = head(x)
            assert tuple(z.shape) == point.shape
            assert torch.equal(tail(z), ref), point.node
        for cand in g.candidates:
            assert torch.equal(g.tail(cand)(g.head(cand)(x)), ref), cand.name


@pytest.mark.parametrize("name", EXACT_MODELS)
def test_verify_reports_every_point_exact(name):
    g = graph_for(name)
    report = g.verify(n_inputs=2, seed=3, points="all")
    assert report["exact"] == report["checked"]
    assert report["mismatches"] == []
    assert report["checked"] == len(g.points) + 2  # offload and local too
    assert g.verify(points="candidates")["checked"] == len(g.candidates)


def test_verify_rejects_bad_arguments():
    g = graph_for("resnet18")
    with pytest.raises(DynsplitError, match="'some'"):
        g.verify(points="some")
    with pytest.raises(DynsplitError, match="n_inputs"):
        g.verify(n_inputs=0)


# ---------------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("name", FAST_COUNT_MODELS)
def test_reference_counts_fast(name):
    assert counts(graph_for(name)) == REFERENCE_COUNTS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_counts_full_table(name):
    g = split_graph_for(name)
    assert counts(g) == REFERENCE_COUNTS[name]
    assert not g.verify(points="candidates")["mismatches"]


# ---------------------------------------------------------------------------------------------- candidates
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_compressive_only_candidates_strictly_shrink(name):
    g = graph_for(name)
    splits = [c for c in g.candidates if c.kind == "split"]
    assert splits
    sizes = [c.elements for c in splits]
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[0] < g.input_elements
    kept = [p for p in g.points if p.candidate]
    assert [p.node for p in kept] == [c.name for c in splits]
    assert all(p.bottleneck for p in kept)
    # every bottleneck dropped by the filter is no smaller than some earlier kept one
    for p in g.points:
        if p.bottleneck and not p.candidate:
            assert any(k.index < p.index and k.elements <= p.elements for k in kept)


def test_without_compressive_only_every_bottleneck_is_a_candidate():
    g = graph_for("resnet18", compressive_only=False)
    bottlenecks = [p.node for p in g.points if p.bottleneck]
    assert [c.name for c in g.candidates[1:-1]] == bottlenecks
    assert all(p.candidate == p.bottleneck for p in g.points)


def test_candidate_layout_offload_splits_local():
    g = graph_for("resnet18")
    first, last = g.candidates[0], g.candidates[-1]
    assert isinstance(first, Candidate) and isinstance(g.points[0], SplitPoint)
    assert (first.index, first.name, first.kind, first.node) == (0, "offload", "offload", None)
    assert first.shape == (1, 3, 224, 224) and first.dtype == "uint8" and first.elements == 3 * 224 * 224
    assert (last.name, last.kind, last.node, last.shape, last.dtype, last.elements) == (
        "local",
        "local",
        None,
        (),
        "none",
        0,
    )
    assert [c.index for c in g.candidates] == list(range(len(g.candidates)))
    for c in g.candidates[1:-1]:
        assert c.kind == "split" and c.node == c.name and c.dtype == "float32"
    assert g.candidate(1) == g.candidates[1]
    assert g.candidate(g.candidates[1].name) == g.candidates[1]
    with pytest.raises(DynsplitError, match="unknown candidate 'layer9'.*expected one of offload"):
        g.candidate("layer9")
    with pytest.raises(DynsplitError, match="out of range"):
        g.candidate(len(g.candidates))


def test_offload_and_local_modules():
    g = graph_for("resnet18")
    x = torch.randn(g.input_shape)
    head, tail = g.split("offload")
    assert torch.equal(head(x), x)
    head, tail = g.split("local")
    with torch.no_grad():
        y = head(x)
        assert torch.equal(tail(y), y)
    assert g.split("local") is g.split(g.candidates[-1])  # cached


def test_heads_hold_only_the_parameters_they_use():
    g = graph_for("resnet18")
    full = sum(p.numel() for p in g.model.parameters())
    previous = 0
    for c in g.candidates[1:-1]:
        head, tail = g.split(c)
        n_head = sum(p.numel() for p in head.parameters())
        n_tail = sum(p.numel() for p in tail.parameters())
        assert 0 < n_head < full
        assert 0 < n_tail < full
        assert n_head + n_tail == full  # resnet18 shares no parameter across a cut
        assert n_head > previous  # later cuts carry more of the model in the head
        previous = n_head
    # heads share storage with the model rather than copying it
    model_ptrs = {p.data_ptr() for p in g.model.parameters()}
    assert {p.data_ptr() for p in g.head(g.candidates[1]).parameters()} <= model_ptrs


def test_describe_is_json_ready():
    g = graph_for("resnet18")
    d = g.describe()
    assert d["model"] == "resnet18"
    assert d["input_shape"] == [1, 3, 224, 224] and d["input_elements"] == 150528
    assert d["compressive_only"] is True
    assert d["candidates"] == [c.name for c in g.candidates]
    assert len(d["points"]) == len(g.points)
    assert set(d["points"][0]) == {"index", "node", "shape", "dtype", "elements", "bottleneck", "candidate"}
    assert "exact" not in d
    d = g.describe(g.verify(points="candidates"))
    assert d["exact"] == d["checked"] == len(g.candidates) and d["mismatches"] == []
    json.dumps(d)


# ---------------------------------------------------------------------------------------------- user models
def test_user_module_spec(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    g = split_graph_for("user_models:make_tiny_net", "1x3x32x32")
    assert g.model_name == "user_models:make_tiny_net"
    assert g.input_shape == (1, 3, 32, 32)
    assert [p.node for p in g.points] == ["stem", "relu", "add", "down", "pool", "flatten"]
    assert g.candidate_names == ["offload", "stem", "down", "pool", "local"]
    assert not g.verify(n_inputs=3)["mismatches"]


def test_user_module_by_file_path():
    g = split_graph_for(f"{TESTS_DIR / 'user_models.py'}:TinyNet", (1, 3, 32, 32))
    assert not g.verify()["mismatches"]


def test_untraceable_module_names_the_call_and_suggests_leaf_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    with pytest.raises(DynsplitError) as info:
        split_graph_for("user_models:GatedNet", (1, 3, 16, 16))
    message = str(info.value)
    assert "\n" not in message
    assert "'gate.0'" in message and "user_models.Gate" in message
    assert "x.sum() > 0" in message  # the failing line
    assert "control flow" in message  # fx's own first line
    assert "leaf_modules" in message and "--leaf-module" in message


class _GatedForward(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.mean() > 0:
            return self.fc(x)
        return x


def test_untraceable_top_level_forward():
    with pytest.raises(
        DynsplitError, match="in the model's own forward at test_partitioner.py:[0-9]+ `if x.mean"
    ):
        SplitGraph(_GatedForward(), (2, 4))


@pytest.mark.parametrize("leaf", ["user_models.Gate", "Gate", "class"])
def test_leaf_modules_make_it_traceable(monkeypatch, leaf):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import user_models

    spec = user_models.Gate if leaf == "class" else leaf
    g = split_graph_for("user_models:GatedNet", (1, 3, 16, 16), leaf_modules=[spec])
    assert "gate_0" in [p.node for p in g.points]
    assert not g.verify(n_inputs=4)["mismatches"]


def test_unknown_leaf_module(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    with pytest.raises(DynsplitError, match="leaf module 'Gat' .*did you mean 'Gate'"):
        split_graph_for("user_models:GatedNet", (1, 3, 16, 16), leaf_modules=["Gat"])


def test_split_graph_from_a_module_instance():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    g = SplitGraph(model, (5, 8))
    assert g.model_name == "Sequential"
    assert [p.node for p in g.points] == ["_0", "_1"]
    assert g.candidate_names == ["offload", "_0", "local"]
    assert not g.verify()["mismatches"]


# ---------------------------------------------------------------------------------------------- errors
def test_bad_input_shape():
    with pytest.raises(
        DynsplitError, match=r"model 'resnet18' rejects input shape \(1, 5, 32, 32\): .*channels"
    ):
        split_graph_for("resnet18", "1x5x32x32")
    with pytest.raises(DynsplitError, match="invalid input shape"):
        split_graph_for("resnet18", "1x3xbig")


def test_unknown_model_did_you_mean():
    with pytest.raises(DynsplitError, match="unknown model 'resnet19'.*did you mean 'resnet18'"):
        split_graph_for("resnet19")


def test_unknown_split_point():
    g = graph_for("resnet18")
    with pytest.raises(DynsplitError, match="unknown candidate 'nowhere'"):
        g.head("nowhere")


# ---------------------------------------------------------------------------------------------- layering
def test_splitting_does_not_import_rl_libraries():
    code = (
        "import sys, dynsplit.splitting.graph, dynsplit.splitting.models\n"
        "bad = [m for m in ('gymnasium', 'stable_baselines3') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
