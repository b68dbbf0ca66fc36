"""Positional encodings for graphs: Laplacian eigenvectors and random-walk structural
encodings, as functions and as PyG transforms."""
from .laplacian import laplacian_pe
from .random_walk import random_walk_pe
from .transforms import AddLaplacianPE, AddRandomWalkPE

__all__ = ["laplacian_pe", "random_walk_pe", "AddLaplacianPE", "AddRandomWalkPE"]
