import pytest
import torch

from gatlib.ops import BackendError, available_backends, select, use_backend


def test_cpu_is_chosen_on_cpu_and_reference_is_last():
    assert available_backends()[-1] == "reference"
    assert select("gat_attention", torch.device("cpu"), torch.float32) == "cpu"


def test_context_manager_and_env(monkeypatch):
    with use_backend("reference"):
        assert select("sparse_attention", torch.device("cpu"), torch.float32) == "reference"
    assert select("sparse_attention", torch.device("cpu"), torch.float32) == "cpu"
    monkeypatch.setenv("GATLIB_BACKEND", "reference")
    assert select("sparse_attention", torch.device("cpu"), torch.float32) == "reference"
    monkeypatch.setenv("GATLIB_BACKEND", "nope")
    with pytest.raises(BackendError, match="unknown gatlib backend 'nope'"):
        select("sparse_attention", torch.device("cpu"), torch.float32)


def test_forced_backend_that_does_not_fit_lists_why():
    with use_backend("cpu"):
        with pytest.raises(BackendError, match=r"runs on \['cpu'\], the inputs are on meta"):
            select("gat_attention", torch.device("meta"), torch.float32)
    with pytest.raises(BackendError, match="unknown"):
        with use_backend("cuda-magic"):
            pass


def test_automatic_choice_falls_back_to_reference_off_cpu():
    assert select("gat_attention", torch.device("meta"), torch.float32) == "reference"
