"""adaprune inside a user's own training loop: AdaPrunerMask and TrainingRecorder.

(a) parity: the same AdaPruner selection through adaprune's loop and through AdaPrunerMask in a plain
    user loop (a DataLoader over `with_indices`, the same seed and model): the masks must be identical
    on CPU. A second user loop with torch's stock `shuffle=True` loader (another batch order) shows how
    much the kept set depends on batch order.
(b) a CIFAR-style ResNet-18 on a CIFAR-sized generated set (3x32x32 coloured digits, offline) through a
    user loop with augmentation (random crop with padding 4, horizontal flip, plain torch), SGD with
    momentum and a cosine learning-rate schedule: the mask's per-epoch state, the kept fraction and the
    selection's exact budget.
(c) TrainingRecorder's overhead per epoch: the same loop with and without `recorder.update` on every
    training batch, in alternating rounds (order flipped every round), as a ratio of median epoch times.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import write_results
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from adaprune import AdaPrunerMask, TrainingRecorder, with_indices
from adaprune.adapruner_mask import Reshuffle
from adaprune.api import load_data
from adaprune.methods.adapruner import AdaPruner
from adaprune.models import build_model
from adaprune.tasks import make_task
from adaprune.training import TrainConfig
from adaprune.training.loop import seeded_model


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a_set, b_set = set(a.tolist()), set(b.tolist())
    return len(a_set & b_set) / len(a_set | b_set)


# ---------------------------------------------------------------- (a)
def user_loop_mask(task, params: dict, keep: float, *, seed: int, loader: DataLoader) -> AdaPrunerMask:
    model = task.new_model(seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=task.train.lr)
    pruner = AdaPrunerMask(task.n, keep=keep, **params)
    for _ in range(pruner.total_epochs):
        for x, y, idx in loader:
            loss = pruner.loss(F.cross_entropy(model(x), y, reduction="none"), idx)
            loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        if pruner.end_epoch():
            break
    return pruner


def parity(datasets: list[str], seed: int, keep: float) -> list[dict]:
    params = {"warmup_epochs": 2, "epochs": 6, "max_extra_epochs": 2}
    rows = []
    for name in datasets:
        task = make_task(load_data(name), train=TrainConfig())
        start = time.perf_counter()
        ours = AdaPruner(**params).train_mask(task, keep, seed=seed, progress=False)
        ours_s = time.perf_counter() - start
        x, y = task.train_tensors()
        dataset = with_indices(TensorDataset(x, y))
        start = time.perf_counter()
        same_order = user_loop_mask(task, params, keep, seed=seed,
                                    loader=DataLoader(dataset, batch_size=task.train.batch_size,
                                                      sampler=Reshuffle(task.n, seed=seed)))
        user_s = time.perf_counter() - start
        stock = user_loop_mask(task, params, keep, seed=seed,
                               loader=DataLoader(dataset, batch_size=task.train.batch_size, shuffle=True,
                                                 generator=torch.Generator().manual_seed(seed)))
        sel_ours, sel_user, sel_stock = ours.selection(), same_order.selection(), stock.selection()
        row = {
            "dataset": name, "n_train": task.n, "keep": keep, "seed": seed, "params": params,
            "masks_identical": bool(torch.equal(ours.mask.detach(), same_order.mask.detach())),
            "max_abs_mask_difference": float((ours.mask - same_order.mask).detach().abs().max()),
            "kept_identical": bool(np.array_equal(sel_ours.kept, sel_user.kept)),
            "n_kept": sel_ours.n_kept,
            "stock_loader_jaccard": jaccard(sel_ours.kept, sel_stock.kept),
            "stock_loader_rank_correlation": float(np.corrcoef(np.argsort(np.argsort(sel_ours.scores)),
                                                               np.argsort(np.argsort(sel_stock.scores)))[0, 1]),
            "our_loop_s": ours_s, "user_loop_s": user_s,
            "pruning_epochs": len(ours.history["r"]), "final_r": ours.history["r"][-1],
        }
        rows.append(row)
        print(f"(a) {name}: identical={row['masks_identical']} kept_identical={row['kept_identical']} "
              f"stock-loader Jaccard={row['stock_loader_jaccard']:.3f}", file=sys.stderr)
    return rows


# ---------------------------------------------------------------- CIFAR-sized data
def coloured_digits(n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """3x32x32 images: a digit of sklearn's 8x8 set, scaled x3, at a random place, in a random colour
    on a random background colour with pixel noise. Offline and deterministic for `seed`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.target), size=n)
    glyphs = torch.from_numpy(digits.images[pick] / 16.0).float()[:, None]  # (n, 1, 8, 8)
    glyphs = F.interpolate(glyphs, scale_factor=3, mode="bilinear", align_corners=False).clamp(0, 1)
    fg = torch.from_numpy(rng.uniform(0.4, 1.0, size=(n, 3, 1, 1))).float()
    bg = torch.from_numpy(rng.uniform(0.0, 0.5, size=(n, 3, 1, 1))).float()
    images = bg.expand(n, 3, 32, 32).clone()
    offsets = rng.integers(0, 32 - 24 + 1, size=(n, 2))
    for i, (oy, ox) in enumerate(offsets):
        window = images[i, :, oy:oy + 24, ox:ox + 24]
        images[i, :, oy:oy + 24, ox:ox + 24] = window * (1 - glyphs[i]) + fg[i] * glyphs[i]
    images += 0.05 * torch.from_numpy(rng.normal(size=images.shape)).float()
    mean, std = images.mean(dim=(0, 2, 3), keepdim=True), images.std(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / std, torch.from_numpy(digits.target[pick]).long()


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random crop (padding 4, reflect) and horizontal flip, per image, in plain torch."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    oy = torch.randint(0, 9, (n,), generator=generator)
    ox = torch.randint(0, 9, (n,), generator=generator)
    rows = (oy[:, None] + torch.arange(32))[:, None, :, None].expand(n, x.shape[1], 32, 40)
    out = padded.gather(2, rows)
    cols = (ox[:, None] + torch.arange(32))[:, None, None, :].expand(n, x.shape[1], 32, 32)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


# ---------------------------------------------------------------- (b)
def resnet_run(n_train: int, n_test: int, keep: float, seed: int, pruning_epochs: int) -> dict:
    x, y = coloured_digits(n_train + n_test, seed=seed)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = seeded_model(lambda: build_model("resnet18", (3, 32, 32), 10), seed, "cpu")
    loader = DataLoader(with_indices(TensorDataset(x_train, y_train)), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    pruner = AdaPrunerMask(n_samples=n_train, keep=keep, warmup_epochs=1, epochs=pruning_epochs, max_extra_epochs=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = pruner.total_epochs * math.ceil(n_train / 64)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    epochs = []
    for epoch in range(pruner.total_epochs):
        start = time.perf_counter()
        model.train()
        losses = []
        for xb, yb, idx in loader:
            per_sample = F.cross_entropy(model(augment(xb, aug_gen)), yb, reduction="none")
            loss = pruner.loss(per_sample, idx)
            loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
            scheduler.step()
            losses.append(float(per_sample.detach().mean()))
        stop = pruner.end_epoch()
        model.eval()
        with torch.no_grad():
            test_acc = float((model(x_test).argmax(1) == y_test).float().mean())
        m = pruner.mask.detach()
        epochs.append({
            "epoch": epoch, "phase": "warm-up" if epoch < pruner.warmup_epochs else "pruning",
            "seconds": time.perf_counter() - start, "lr_end": scheduler.get_last_lr()[0],
            "train_loss": float(np.mean(losses)), "test_accuracy": test_acc,
            "alpha": pruner.history["alpha"][-1] if epoch >= pruner.warmup_epochs else None,
            "r": float((m > 0).float().mean()), "mask_min": float(m.min()), "mask_median": float(m.median()),
            "mask_max": float(m.max()),
        })
        print(f"(b) epoch {epoch}: {epochs[-1]}", file=sys.stderr)
        if stop:
            break
    sel = pruner.selection(seed=seed)
    # Do kept and pruned images differ in how hard they are? Loss of the final model, no augmentation.
    with torch.no_grad():
        final_loss = F.cross_entropy(model(x_train), y_train, reduction="none").numpy()
    return {
        "n_train": n_train, "n_test": n_test, "image_shape": [3, 32, 32], "keep": keep, "seed": seed,
        "batch_size": 64, "optimizer": "sgd(momentum 0.9, weight decay 5e-4)", "schedule": "OneCycleLR, max lr 0.05",
        "augmentation": "random crop (pad 4, reflect) + horizontal flip",
        "params": pruner.params(), "epochs": epochs,
        "n_kept": sel.n_kept, "expected_n_kept": round(keep * n_train),
        "mask_keep_fraction": sel.details["mask_keep_fraction"],
        "converged": sel.details["converged"],
        "final_loss_kept_mean": float(final_loss[sel.kept].mean()),
        "final_loss_pruned_mean": float(final_loss[~sel.mask].mean()),
    }


# ---------------------------------------------------------------- (c)
def recorder_overhead(name: str, x: Tensor, y: Tensor, model_name: str, rounds: int, batch_size: int) -> dict:
    shape, classes = tuple(x.shape[1:]), int(y.max()) + 1
    arms = {arm: seeded_model(lambda: build_model(model_name, shape, classes), 0, "cpu") for arm in ("plain", "rec")}
    opts = {arm: torch.optim.Adam(m.parameters(), lr=3e-3) for arm, m in arms.items()}
    gens = {arm: torch.Generator().manual_seed(0) for arm in arms}
    recorder = TrainingRecorder(n_samples=len(y), num_classes=classes)
    times: dict[str, list[float]] = {"plain": [], "rec": []}

    def epoch(arm: str) -> float:
        model, opt = arms[arm], opts[arm]
        model.train()
        start = time.perf_counter()
        for idx in torch.randperm(len(y), generator=gens[arm]).split(batch_size):
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
            if arm == "rec":
                recorder.update(logits, y[idx], idx)
        if arm == "rec":
            recorder.end_epoch()
        return time.perf_counter() - start

    epoch("plain"), epoch("rec")  # untimed warm-up round
    for r in range(rounds):
        for arm in (("plain", "rec") if r % 2 == 0 else ("rec", "plain")):
            times[arm].append(epoch(arm))
    ratios = sorted(a / b for a, b in zip(times["rec"], times["plain"], strict=True))
    return {
        "setting": name, "model": model_name, "n_train": len(y), "batch_size": batch_size, "rounds": rounds,
        "plain_s_per_epoch": times["plain"], "recorder_s_per_epoch": times["rec"],
        "plain_median": statistics.median(times["plain"]), "recorder_median": statistics.median(times["rec"]),
        "ratio": statistics.median(times["rec"]) / statistics.median(times["plain"]),
        "round_ratio_quartiles": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
        "recorder_bytes": recorder.nbytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parity-datasets", default="digits,mnist1d")
    parser.add_argument("--resnet-train", type=int, default=1000)
    parser.add_argument("--resnet-test", type=int, default=500)
    parser.add_argument("--resnet-pruning-epochs", type=int, default=3)
    parser.add_argument("--recorder-images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="a,b,c")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    head = ["CPU only (no GPU in this session), 1 torch thread, on a machine shared with other jobs "
            "(load average about 25 on 2 cores while these ran: absolute seconds are inflated).", ""]
    if "a" in parts:
        lines = list(head)
        rows = parity(args.parity_datasets.split(","), args.seed, keep=0.7)
        lines += ["### (a) AdaPruner through adaprune's loop and through AdaPrunerMask in a user loop", "",
                  f"keep 0.7, seed {args.seed}, AdaPruner {rows[0]['params']}, default training (Adam 3e-3, "
                  "batch 128). User loop: a DataLoader over `with_indices(TensorDataset(x, y))` with a sampler "
                  "drawing one `randperm` per epoch from the same seed. Stock loader: `shuffle=True` with a "
                  "generator of the same seed (another batch order).", "",
                  "| dataset | samples | masks identical | max abs mask diff | kept sets identical | our loop s | "
                  "user loop s | stock loader: Jaccard of kept sets | stock loader: rank correlation of m |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['n_train']} | {r['masks_identical']} | {r['max_abs_mask_difference']:.1e} | "
                  f"{r['kept_identical']} | {r['our_loop_s']:.1f} | {r['user_loop_s']:.1f} | "
                  f"{r['stock_loader_jaccard']:.3f} | {r['stock_loader_rank_correlation']:.3f} |" for r in rows]
        write_results("own_loop_parity", {"torch_threads": 1, "rows": rows}, "\n".join(lines) + "\n")
    if "b" in parts:
        run = resnet_run(args.resnet_train, args.resnet_test, keep=0.7, seed=args.seed,
                         pruning_epochs=args.resnet_pruning_epochs)
        lines = list(head)
        lines += ["### (b) ResNet-18 (CIFAR variant) in a user loop with augmentation and a scheduler", "",
                  f"{run['n_train']} training / {run['n_test']} test images of 3x32x32 (coloured, shifted "
                  f"digits generated from scikit-learn's 8x8 set), batch 64, {run['optimizer']}, "
                  f"{run['schedule']}, {run['augmentation']}; AdaPrunerMask keep {run['keep']}, warm-up 1 "
                  f"epoch, {run['params']['epochs']} pruning epochs, no extra epochs; seed {run['seed']}.", "",
                  "| epoch | phase | s | lr at end | train loss | test acc | alpha | r (w > 0.5) "
                  "| mask min / median / max |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in run["epochs"]:
            alpha = "-" if e["alpha"] is None else f"{e['alpha']:.2f}"
            lines.append(f"| {e['epoch']} | {e['phase']} | {e['seconds']:.0f} | {e['lr_end']:.4f} | "
                         f"{e['train_loss']:.3f} | {e['test_accuracy']:.3f} | {alpha} | {e['r']:.3f} | "
                         f"{e['mask_min']:.2f} / {e['mask_median']:.2f} / {e['mask_max']:.2f} |")
        lines += ["", f"Selection: {run['n_kept']} kept of {run['n_train']} (budget round(0.7 x N) = "
                  f"{run['expected_n_kept']}); the mask itself keeps {run['mask_keep_fraction']:.3f} "
                  f"(converged within epsilon: {run['converged']}). Mean loss of the final model: kept "
                  f"{run['final_loss_kept_mean']:.3f}, pruned {run['final_loss_pruned_mean']:.3f}."]
        write_results("own_loop_resnet18", {"torch_threads": 1, **run}, "\n".join(lines) + "\n")
    if "c" in parts:
        x, y = coloured_digits(args.recorder_images, seed=args.seed)
        digits = load_data("digits")
        rows = [
            recorder_overhead(f"small CNN, {args.recorder_images} coloured digits 3x32x32", x, y, "cnn", args.rounds,
                              128),
            recorder_overhead("MLP, digits (64 features): tiny model, worst case", torch.from_numpy(digits.x),
                              torch.from_numpy(digits.y), "mlp", args.rounds * 3, 128),
        ]
        lines = list(head)
        lines += ["### (c) TrainingRecorder overhead per epoch (target: ratio <= 1.05)", "",
                  "The same loop with and without `recorder.update(logits, y, idx)` after every training batch "
                  "(and `end_epoch()`), alternating rounds with the order flipped each round; ratio of median "
                  "epoch times.", "",
                  "| setting | rounds | plain s/epoch | with recorder s/epoch | ratio | per-round ratio quartiles | "
                  "recorder memory |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['rounds']} | {r['plain_median']:.4f} | {r['recorder_median']:.4f} | "
                  f"{r['ratio']:.3f} | {r['round_ratio_quartiles'][0]:.3f} to {r['round_ratio_quartiles'][1]:.3f} | "
                  f"{r['recorder_bytes'] / 1024:.0f} KiB |" for r in rows]
        write_results("own_loop_recorder", {"torch_threads": 1, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
