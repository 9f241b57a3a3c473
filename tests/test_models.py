"""Model specs: torchvision names, user ``module:callable`` specs, input shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.models import (
    DEFAULT_INPUT_SHAPE,
    build_model,
    classification_model_names,
    default_input_shape,
    parse_input_shape,
)

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def user_models_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def test_classification_model_names():
    names = classification_model_names()
    assert names == sorted(names)
    assert {"resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "swin_t"} <= set(names)
    assert not any(n.startswith(("fasterrcnn", "deeplabv3", "raft", "r3d")) for n in names)


def test_build_torchvision_model_in_eval_mode_without_downloading(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("build_model must not download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = build_model("resnet18")
    assert isinstance(model, torch.nn.Module)
    assert not model.training
    assert not any(m.training for m in model.modules())


def test_unknown_torchvision_name():
    with pytest.raises(DynsplitError, match="unknown model 'mobilenet_v4'.*did you mean 'mobilenet_v2'"):
        build_model("mobilenet_v4")
    with pytest.raises(DynsplitError, match="did you mean 'resnet50'"):
        build_model("ResNet50")
    with pytest.raises(DynsplitError, match="invalid model spec"):
        build_model("  ")


def test_user_factory_class_and_instance(user_models_on_path):
    for spec in ("user_models:make_tiny_net", "user_models:TinyNet", "user_models:TINY_INSTANCE"):
        model = build_model(spec)
        assert type(model).__name__ == "TinyNet"
        assert not model.training
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_user_model_from_file_path():
    model = build_model(f"{TESTS_DIR / 'user_models.py'}:make_tiny_net")
    assert type(model).__name__ == "TinyNet"


def test_user_module_not_importable():
    with pytest.raises(
        DynsplitError, match=r"cannot import module 'no_such_pkg\.nets' for model 'no_such_pkg\.nets:make': "
    ):
        build_model("no_such_pkg.nets:make")
    with pytest.raises(DynsplitError, match="cannot import module 'missing/file.py'"):
        build_model("missing/file.py:make")


def test_user_attribute_missing(user_models_on_path):
    with pytest.raises(
        DynsplitError, match="module 'user_models' has no attribute 'make_tiny'.*did you mean 'make_tiny_net'"
    ):
        build_model("user_models:make_tiny")


def test_user_result_not_a_module(user_models_on_path):
    with pytest.raises(DynsplitError, match="'user_models:make_not_a_model' returned a str; expected"):
        build_model("user_models:make_not_a_model")
    with pytest.raises(DynsplitError, match="'user_models:NOT_A_MODEL' is a int; expected"):
        build_model("user_models:NOT_A_MODEL")


def test_user_callable_needing_arguments():
    with pytest.raises(DynsplitError, match="calling 'torch.nn:Linear' with no arguments failed"):
        build_model("torch.nn:Linear")


def test_empty_module_or_attribute():
    with pytest.raises(DynsplitError, match="invalid model spec ':make'"):
        build_model(":make")
    with pytest.raises(DynsplitError, match="invalid model spec 'user_models:'"):
        build_model("user_models:")


def test_default_input_shape():
    assert default_input_shape("resnet50") == (1, 3, 224, 224) == DEFAULT_INPUT_SHAPE
    assert default_input_shape("inception_v3") == (1, 3, 299, 299)
    assert default_input_shape("user_models:make_tiny_net") == (1, 3, 224, 224)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1x3x224x224", (1, 3, 224, 224)),
        ("1,3,224,224", (1, 3, 224, 224)),
        ("1, 3, 224, 224", (1, 3, 224, 224)),
        ("(1, 3, 299, 299)", (1, 3, 299, 299)),
        ("[2 x 3 x 32 x 32]", (2, 3, 32, 32)),
        ("4X16", (4, 16)),
        ("8", (8,)),
        ((1, 3, 8, 8), (1, 3, 8, 8)),
        ([2, 5], (2, 5)),
    ],
)
def test_parse_input_shape(text, expected):
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize(
    "text", ["", "x", "1x3x", "1,,3", "1x0x4", "1x-3x4", "1.5x3", "abc", "1x3;4", (1, 0), (), None]
)
def test_parse_input_shape_rejects(text):
    with pytest.raises(DynsplitError, match="invalid input shape.*expected positive integers"):
        parse_input_shape(text)
