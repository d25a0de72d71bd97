"""Streaming embed of a folder of small generated images: images/s, and peak memory at 10k and 50k.

--max-n random 32x32 RGB PNGs (seeded) are written under --workdir in 10 class folders; for every N in
--sizes a manifest (files:LIST, CSV) lists the first N, and a fresh process runs

    python -m adaprune embed files:LIST --encoder pixels:64 --out emb.npy --chunk-size 1024 --quiet

The parent samples the child's /proc/PID/status every 0.1 s (peak RssAnon, and VmHWM, which also
counts the memory-mapped output). Flat memory means the peak does not grow with N: the pixels are
decoded chunk by chunk (the PCA is fitted on a seeded sample of at most 10,000 images, the same at
10k and 50k), whereas an in-memory array of the images would be N x 3 x 32 x 32 x 4 bytes."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from _common import write_results
from scale_1e7 import machine_load, run_child

log = logging.getLogger("embed_stream")

CHILD_ARGS = ["embed", "{spec}", "--encoder", "pixels:64", "--out", "{out}", "--chunk-size", "1024", "--quiet"]


def write_images(folder: Path, n: int, *, seed: int, size: int = 32) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        rel = f"class{i % 10}/{i:06d}.png"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        else:
            rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # keep the stream aligned
        paths.append(rel)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--keep-images", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    work = Path(args.workdir)
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = work / "images"
    t0 = time.perf_counter()
    rel = write_images(folder, max(sizes), seed=args.seed)
    log.info("%d images written in %.1f s", len(rel), time.perf_counter() - t0)
    rows = []
    try:
        for n in sizes:
            manifest = folder / f"first_{n}.csv"
            manifest.write_text("path,label\n" + "".join(f"{p},{p[5]}\n" for p in rel[:n]))
            out = work / f"emb_{n}.npy"
            before = machine_load()
            res = run_child([a.format(spec=f"files:{manifest}", out=out) for a in CHILD_ARGS], 3600)
            emb = np.load(out, mmap_mode="r")
            assert emb.shape == (n, 64)
            in_memory = n * 3 * 32 * 32 * 4
            rows.append({"n": n, **res, "images_per_second": n / res["wall_seconds"],
                         "decoded_array_bytes": in_memory, "load_before": before})
            log.info("N=%d: %.1f s (%.0f images/s), peak anon %.0f MB, HWM %.0f MB", n, res["wall_seconds"],
                     n / res["wall_seconds"], res["peak_RssAnon_bytes"] / 2**20, res["peak_VmHWM_bytes"] / 2**20)
            for f in work.glob(f"emb_{n}*"):
                f.unlink()
    finally:
        if not args.keep_images:
            shutil.rmtree(folder, ignore_errors=True)
    growth = rows[-1]["peak_RssAnon_bytes"] / rows[0]["peak_RssAnon_bytes"]
    lines = [
        "## Streaming embed of a folder of 32x32 PNGs (`adaprune embed files:LIST --encoder pixels:64`)",
        "",
        "Fresh process per N, chunks of 1024 images; wall time includes start-up, the bad-file scan of every "
        "file, the PCA fit on a sample of at most 10,000 images and the streaming pass. Anon = peak RssAnon "
        "(allocated memory); HWM = kernel peak RSS (also counts the memory-mapped output).",
        "",
        "| N images | wall s | images / s | peak anon MB | peak HWM MB | the decoded images would be MB | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['wall_seconds']:.1f} | {r['images_per_second']:.0f} | "
                     f"{r['peak_RssAnon_bytes'] / 2**20:.0f} | {r['peak_VmHWM_bytes'] / 2**20:.0f} | "
                     f"{r['decoded_array_bytes'] / 2**20:.0f} | {r['load_before']['loadavg'][0]:.1f} |")
    lines += ["", f"Peak allocated memory at {sizes[-1]:,} / at {sizes[0]:,} images: {growth:.2f}x "
                  f"(the data grew {sizes[-1] / sizes[0]:.0f}x)."]
    write_results("embed_stream", {"seeds": {"images": args.seed, "pca": 0}, "rows": rows,
                                   "anon_growth": growth}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
