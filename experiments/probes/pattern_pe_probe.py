"""How much of PATTERN the Laplacian encodings give away on their own: a logistic regression on
the absolute values of each node's k = 2 eigenvectors (sign-invariant, nothing else), and one on
the node's degree, fitted on half of 400 graphs drawn with the paper's generator parameters and
scored (balanced accuracy) on the other half. Explains why attention over all nodes, which sees
no edge but the encodings, learns PATTERN in `gatlib compare --preset medium`.

Run:  python experiments/probes/pattern_pe_probe.py
"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from gatlib.data import sbm_pattern
from gatlib.experiments.tasks import PAPER_PE_DIM, PAPER_SBM
from gatlib.pe import laplacian_pe


def main() -> None:
    graphs = sbm_pattern(400, seed=5, **PAPER_SBM["pattern"])
    pe, y, degree = [], [], []
    for g in graphs:
        k = PAPER_PE_DIM["pattern"]
        pe.append(np.abs(laplacian_pe(g.edge_index, g.num_nodes, k, per_component=True).numpy()))
        y.append(g.y.numpy())
        degree.append(np.bincount(g.edge_index[1].numpy(), minlength=g.num_nodes))
    pe, y, degree = np.concatenate(pe), np.concatenate(y), np.concatenate(degree)[:, None]
    half = len(y) // 2
    for name, x in (("|Laplacian eigenvectors| (k = 2)", pe), ("degree", degree)):
        clf = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x[:half], y[:half])
        score = balanced_accuracy_score(y[half:], clf.predict(x[half:])) * 100
        print(f"PATTERN nodes found from {name} alone: {score:.1f}% balanced accuracy")


if __name__ == "__main__":
    main()
