"""Datasets: the offline-first resolution of dataset roots and mirrors."""
from .root import DatasetNotFound, dataset_root, ensure_raw, mirror_roots, planetoid

__all__ = ["dataset_root", "mirror_roots", "ensure_raw", "DatasetNotFound", "planetoid"]
