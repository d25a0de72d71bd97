"""Full-data test accuracy on scikit-learn's wine and breast-cancer (bundled, offline) with the input
standardisation off and on (the default): the built-in mlp, 30 epochs, seeds 0-2.

Each set is split 75/25 stratified (random_state=0); the standardisation's mean and std come from
the training split only. Test accuracy is read once, after the last epoch."""

from __future__ import annotations

import sys

import numpy as np
import torch
from _common import write_results

from adaprune.api import evaluate
from adaprune.data import Dataset
from adaprune.selection import Selection

SEEDS = (0, 1, 2)
EPOCHS = 30


def dataset(name: str) -> Dataset:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name]()
    x_tr, x_te, y_tr, y_te = train_test_split(bunch.data.astype(np.float32), bunch.target, test_size=0.25,
                                              random_state=0, stratify=bunch.target)
    return Dataset(name=name, x=x_tr, y=y_tr.astype(np.int64), x_test=x_te, y_test=y_te.astype(np.int64))


def main() -> int:
    torch.set_num_threads(1)
    rows = []
    for name in ("wine", "breast_cancer"):
        data = dataset(name)
        everything = Selection(kept=np.arange(data.n), n_total=data.n, method="all", params={}, seed=None,
                               requested_keep=1.0)
        for standardize in (False, True):
            res = evaluate(data, everything, seeds=SEEDS, epochs=EPOCHS, include_full=False, progress=False,
                           standardize=standardize)
            accs = np.array(res.subset)
            rows.append({"data": name, "n_train": data.n, "n_test": len(data.y_test), "features": data.x.shape[1],
                         "standardize": standardize, "accuracy": accs.tolist(), "mean": float(accs.mean()),
                         "std": float(accs.std(ddof=1))})
            print(rows[-1], file=sys.stderr)
    lines = ["## Vector inputs: full-data test accuracy with standardisation off and on", "",
             f"Built-in mlp (auto for vectors), {EPOCHS} epochs, Adam 3e-3, seeds {list(SEEDS)}, mean ± sample std; "
             "mean and std from the training split only.", "",
             "| data | train / test | features | standardize | accuracy (%) |", "|---|---|---|---|---|"]
    for r in rows:
        setting = "on (default)" if r["standardize"] else "off"
        lines.append(f"| {r['data']} | {r['n_train']} / {r['n_test']} | {r['features']} | {setting} | "
                     f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} |")
    write_results("standardize", {"seeds": list(SEEDS), "epochs": EPOCHS, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
