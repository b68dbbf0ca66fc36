"""Fixtures for the PyG-compatibility tests: every test starts from the same random state, so a
failure reproduces (PyG's own tests draw their inputs unseeded)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(12345)
    yield
