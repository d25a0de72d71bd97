"""What `--model auto` should pick: accuracy and seconds per epoch of the candidate models on digits-,
MNIST- and CIFAR-sized inputs, and the time of the default AdaPruner command on 4000 MNIST-size images.

Data (all offline, generated from scikit-learn's digits; train images come from digits' training split
and test images from its test split, so no digit is in both):
  digits       the 8x8 originals (1347 train / 450 test)
  MNIST-size   1x28x28 grey: digits upsampled to 20x20, placed at a random offset, plus pixel noise
  CIFAR-size   3x32x32 colour: digits upsampled to 24x24 in a random colour, at a random offset, on a
               random-colour noisy background
  mnist1d      the MNIST-1D sequences (1x40), for mlp vs cnn1d
Each candidate trains with the library's defaults (Adam 3e-3, batch 128, one torch thread) for
`--epochs` epochs; test accuracy is read once at the end. Seconds per epoch are the training's own
wall and CPU time divided by the epochs. The machine was shared with other jobs: CPU seconds are the
steadier figure, wall seconds show what a user waited.

`--default-command` then runs `adaprune prune npz:mnist_size.npz --method adapruner --prune 0.3 --out
sel.csv` as a user would (auto model, default parameters) and trains a fresh auto model on its kept
set, on a random 70% and on all the data."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import write_results

from adaprune.data import Dataset, load_data
from adaprune.evaluate import train_and_test
from adaprune.models import auto_model_name
from adaprune.selection import Selection
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig

CANDIDATES = {
    "digits": ("mlp", "cnn_small", "cnn"),
    "MNIST-size": ("mlp", "cnn_small", "cnn"),
    "CIFAR-size": ("mlp", "cnn_small", "cnn"),
    "mnist1d": ("mlp", "cnn1d"),
}


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(images[:, None].astype(np.float32))
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def mnist_size(digits: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` 1x28x28 grey images from 8x8 digits (N, 8, 8) in [0, 1]; returns (x, index of the source digit)."""
    src = rng.integers(0, len(digits), n)
    up = _upsample(digits[src], 20)
    x = np.zeros((n, 1, 28, 28), np.float32)
    off = rng.integers(0, 9, size=(n, 2))
    for i in range(n):
        x[i, 0, off[i, 0]:off[i, 0] + 20, off[i, 1]:off[i, 1] + 20] = up[i]
    x += rng.normal(scale=0.1, size=x.shape).astype(np.float32)
    return np.clip(x, 0, 1), src


def cifar_size(digits: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` 3x32x32 colour images: a coloured digit on a random-colour noisy background."""
    src = rng.integers(0, len(digits), n)
    up = _upsample(digits[src], 24)
    fg = rng.random((n, 3, 1, 1), dtype=np.float32)
    bg = rng.random((n, 3, 1, 1), dtype=np.float32)
    x = np.broadcast_to(bg, (n, 3, 32, 32)).copy()
    x += rng.normal(scale=0.15, size=x.shape).astype(np.float32)
    off = rng.integers(0, 9, size=(n, 2))
    for i in range(n):
        a, b = off[i]
        alpha = up[i][None]
        x[i, :, a:a + 24, b:b + 24] = alpha * fg[i] + (1 - alpha) * x[i, :, a:a + 24, b:b + 24]
    return np.clip(x, 0, 1).astype(np.float32), src


def make_set(kind: str, n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """A generated set from digits' own train/test split (no source digit in both)."""
    base = load_data("digits")
    rng = np.random.default_rng(seed)
    make = mnist_size if kind == "MNIST-size" else cifar_size
    x, src = make(base.x[:, 0], n_train, rng)
    xt, src_t = make(base.x_test[:, 0], n_test, rng)
    return Dataset(name=kind, x=x, y=base.y[src], x_test=xt, y_test=base.y_test[src_t])


def measure(data: Dataset, model: str, epochs: int, seed: int) -> dict:
    task = ClassificationTask(data=data, model=model, train=TrainConfig(epochs=epochs))
    wall, cpu = time.perf_counter(), time.process_time()
    acc = train_and_test(task, None, seed=seed, progress=False).value
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_params = sum(p.numel() for p in task.new_model(0).parameters())
    return {"model": model, "accuracy": acc, "wall_per_epoch": wall / epochs, "cpu_per_epoch": cpu / epochs,
            "parameters": n_params}


def default_command(data: Dataset, seeds: list[int], eval_epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist_size.npz"
        np.savez(npz, x=data.x[:, 0], y=data.y, x_test=data.x_test[:, 0], y_test=data.y_test)  # (N, 28, 28)
        out = Path(tmp) / "sel.csv"
        cmd = [sys.executable, "-m", "adaprune", "prune", f"npz:{npz}", "--method", "adapruner", "--prune", "0.3",
               "--out", str(out), "--quiet"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sel = Selection.load(out)
    task = ClassificationTask(data=data, train=TrainConfig(epochs=eval_epochs))
    rows = {"adapruner (default command)": sel.kept, "random": None, "full data": np.arange(data.n)}
    result = {"command": "adaprune prune npz:mnist_size.npz --method adapruner --prune 0.3 --out sel.csv",
              "seeds": seeds, "samples": {"adapruner (default command)": sel.n_kept, "random": sel.n_kept,
                                          "full data": data.n},
              "wall_seconds": wall,
              "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
              "auto_model": auto_model_name(data.sample_shape),
              "params": sel.params, "details": {k: v for k, v in sel.details.items() if k != "history"},
              "accuracy": {}}
    for name, kept in rows.items():
        accs = []
        for seed in seeds:
            idx = kept if kept is not None else np.sort(np.random.default_rng(seed).permutation(data.n)[:sel.n_kept])
            accs.append(train_and_test(task, idx, seed=seed, progress=False).value)
        result["accuracy"][name] = accs
    return result


def report(args: argparse.Namespace, rows: list[dict], command: dict | None) -> None:
    lines = ["## `auto` model candidates: test accuracy and seconds per epoch", ""]
    if command is not None:
        seeds = command["seeds"]
        lines += ["### The default AdaPruner command on 4000 MNIST-size (28x28 grey) images", "",
                  f"`{command['command']}`: **{command['wall_seconds']:.1f} s wall, {command['cpu_seconds']:.1f} s "
                  f"CPU** (auto model {command['auto_model']}; {command['details'].get('threads')} torch thread; "
                  f"{command['details'].get('pruning_epochs_run')} pruning epochs after the warm-up). A fresh auto "
                  f"model trained 30 epochs on each set, test accuracy (%) over seeds {seeds}:", "",
                  "| training set | samples | accuracy (%) |", "|---|---|---|"]
        for name, accs in command["accuracy"].items():
            lines.append(f"| {name} | {command['samples'][name]} | {100 * np.mean(accs):.2f} ± "
                         f"{100 * np.std(accs):.2f} |")
        lines.append("")
    lines += ["### Candidates", "",
              f"One seed (0), Adam 3e-3, batch 128, one torch thread; digits and mnist1d {args.epochs} epochs, the "
              f"generated sets {args.image_epochs} epochs on {args.n_train} training images (to fit the time we "
              "had). The machine was shared with other jobs: CPU seconds are the steadier figure.", "",
              "| data | sample shape | train | epochs | model | parameters | accuracy (%) | CPU s/epoch | "
              "wall s/epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {tuple(r['shape'])} | {r['n_train']} | {r['epochs']} | {r['model']} | "
                     f"{r['parameters']:,} | {100 * r['accuracy']:.2f} | {r['cpu_per_epoch']:.3f} | "
                     f"{r['wall_per_epoch']:.3f} |")
    write_results(args.stem, {"epochs": args.epochs, "image_epochs": args.image_epochs, "seed": 0,
                                 "rows": rows, "default_command": command}, "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs on digits and mnist1d")
    parser.add_argument("--image-epochs", type=int, default=5, help="training epochs on the generated sets")
    parser.add_argument("--n-train", type=int, default=2000, help="training images of the generated sets")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--sets", default=",".join(CANDIDATES))
    parser.add_argument("--default-command", action="store_true")
    parser.add_argument("--eval-seeds", type=int, default=1)
    parser.add_argument("--stem", default="auto_model", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = {
        "digits": lambda: load_data("digits"),
        "mnist1d": lambda: load_data("mnist1d"),
        "MNIST-size": lambda: make_set("MNIST-size", args.n_train, args.n_test),
        "CIFAR-size": lambda: make_set("CIFAR-size", args.n_train, args.n_test),
    }
    rows: list[dict] = []
    command = None
    if args.default_command:
        command = default_command(make_set("MNIST-size", 4000, 1000), list(range(args.eval_seeds)), 30)
        print(command, file=sys.stderr, flush=True)
        report(args, rows, command)
    for name in args.sets.split(","):
        data = sets[name]()
        epochs = args.epochs if name in ("digits", "mnist1d") else args.image_epochs
        for model in CANDIDATES[name]:
            row = {"data": name, "shape": list(data.sample_shape), "n_train": data.n, "epochs": epochs,
                   **measure(data, model, epochs, 0)}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
            report(args, rows, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
