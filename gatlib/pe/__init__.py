"""Positional encodings for graphs: Laplacian eigenvectors and random-walk structural
encodings, as functions and as PyG transforms (PyG's arguments and numbers by default)."""
from .laplacian import laplacian_pe
from .random_walk import random_walk_pe
from .transforms import AddLaplacianEigenvectorPE, AddLaplacianPE, AddRandomWalkPE

__all__ = ["laplacian_pe", "random_walk_pe", "AddLaplacianPE", "AddLaplacianEigenvectorPE",
           "AddRandomWalkPE"]
