"""Datasets: the offline-first resolution of dataset roots and mirrors, the registry of known
datasets (checksummed raw files, linked or copied from a mirror, never downloaded, checked
again when loaded) and synthetic generators that need no files, and graph-classification tasks
built from sequences (path graphs) and images (grid graphs); the splits of all of them
(:mod:`gatlib.data.splits`)."""
from .root import (DatasetDamaged, DatasetNotFound, dataset_root, ensure_raw, mirror_roots,
                   planetoid)
from .registry import (DatasetEntry, DatasetStatus, FetchRecord, FetchReport, UnknownDataset,
                       check_dataset, dataset_checksum, dataset_status, fetch, get,
                       list_datasets, load_dataset, verify)
from .synthetic import csbm, sbm_cluster, sbm_pattern
from .splits import random_split, split_mask, stratified_folds, stratified_masks, stratified_split
from .tasks import SEQUENCE_PATTERNS, digits_graphs, long_range_sequences, receptive_field

__all__ = ["dataset_root", "mirror_roots", "ensure_raw", "DatasetNotFound", "DatasetDamaged",
           "UnknownDataset", "planetoid", "DatasetEntry", "DatasetStatus", "FetchRecord",
           "FetchReport", "list_datasets", "get", "load_dataset", "check_dataset",
           "dataset_checksum", "dataset_status", "fetch", "verify", "csbm", "sbm_pattern",
           "sbm_cluster", "long_range_sequences", "receptive_field", "SEQUENCE_PATTERNS",
           "digits_graphs", "stratified_split", "stratified_masks", "stratified_folds",
           "random_split", "split_mask"]
