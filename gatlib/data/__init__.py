"""Datasets, offline first: where they live (``root``: the local root and mirrors), what they
are (``registry``, its checksums the package data ``checksums.json``), checking their raw files
(``checks``), the one loading path (``load``) and getting files from a mirror (``install``);
nothing is downloaded. Also synthetic generators that need no files (``synthetic``),
graph-classification tasks built from sequences (path graphs) and images (grid graphs)
(``tasks``), and the splits of all of them (``splits``)."""
from .root import DatasetDamaged, DatasetNotFound, dataset_root, ensure_raw, mirror_roots
from .registry import DatasetEntry, UnknownDataset, dataset_checksum, get, list_datasets
from .checks import DatasetStatus, check_dataset, dataset_status, verify
from .load import load_dataset
from .install import FetchRecord, FetchReport, fetch
from .synthetic import csbm, sbm_cluster, sbm_pattern
from .splits import random_split, split_mask, stratified_folds, stratified_masks, stratified_split
from .tasks import SEQUENCE_PATTERNS, digits_graphs, long_range_sequences, receptive_field

__all__ = ["dataset_root", "mirror_roots", "ensure_raw", "DatasetNotFound", "DatasetDamaged",
           "UnknownDataset", "DatasetEntry", "DatasetStatus", "FetchRecord",
           "FetchReport", "list_datasets", "get", "load_dataset", "check_dataset",
           "dataset_checksum", "dataset_status", "fetch", "verify", "csbm", "sbm_pattern",
           "sbm_cluster", "long_range_sequences", "receptive_field", "SEQUENCE_PATTERNS",
           "digits_graphs", "stratified_split", "stratified_masks", "stratified_folds",
           "random_split", "split_mask"]
