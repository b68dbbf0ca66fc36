"""Raw files that upstream no longer serves as PyG reads them, rebuilt from a file it does serve
by a named procedure; the result is checked against the registry's sha256 like any other file.

One procedure today, ``geom_gcn_features``: the geom-gcn feature/label text files of chameleon
and squirrel (``out1_node_feature_label.txt``, absent from geom-gcn's repository at the pinned
commit) written from yandex-research/heterophilous-graphs' ``<name>.npz`` (its ``node_features``
and ``node_labels``): a header ``node_id<TAB>feature<TAB>label``, then one line per node in id
order, ``<id><TAB><0/1 features, comma-separated><TAB><label>``. The node order is geom-gcn's:
the npz's ten train/validation/test masks equal geom-gcn's split files, and for Texas and
Wisconsin, where both versions exist, the npz's features and labels equal geom-gcn's text files.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["REBUILDS", "geom_gcn_features"]


def geom_gcn_features(src: Path, dst: Path) -> None:
    """Write geom-gcn's ``out1_node_feature_label.txt`` at ``dst`` from the npz at ``src``."""
    import numpy as np
    with np.load(src, allow_pickle=False) as npz:
        x = np.asarray(npz["node_features"])                  # [N, F], 0/1
        y = np.asarray(npz["node_labels"]).reshape(-1)        # [N]
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{src}: node_features {x.shape} and node_labels {y.shape} do not "
                         f"describe the same nodes")
    xi = x.astype(np.int64)
    if not np.array_equal(xi, x):
        raise ValueError(f"{src}: node_features are not 0/1 integers")
    with open(dst, "w", newline="\n") as f:
        f.write("node_id\tfeature\tlabel\n")
        for i in range(xi.shape[0]):
            f.write(f"{i}\t{','.join(map(str, xi[i].tolist()))}\t{int(y[i])}\n")


REBUILDS = {"geom_gcn_features": geom_gcn_features}
