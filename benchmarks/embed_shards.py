"""Streaming embed of images stored in containers: peak memory at 10k and 50k members, tar and Parquet.

--max-n random 32x32 RGB PNGs (seeded) are written as webdataset tar shards of 1,000 samples
(`KEY.png` + `KEY.cls`) and as Parquet files of 1,000 rows (an HF-style `{"bytes", "path"}` image
column and a `label` column, row groups of 250). For every N in --sizes a glob names the first
N / 1000 containers, and a fresh process runs

    python -m adaprune embed webdataset:GLOB (or parquet:GLOB) --encoder pixels:64 --out emb.npy --chunk-size 1024

The parent samples the child's /proc/PID/status every 0.1 s (peak RssAnon; VmHWM also counts the
memory-mapped output). Flat memory means the peak does not grow with N: members are read (by tar
offset, or by row group) and decoded chunk by chunk; what grows is the index (a few numbers and a
key per member) and the N x 64 output."""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from _common import write_results
from scale_1e7 import machine_load, run_child

log = logging.getLogger("embed_shards")

PER_CONTAINER = 1000
CHILD_ARGS = ["embed", "{spec}", "--encoder", "pixels:64", "--out", "{out}", "--chunk-size", "1024", "--quiet"]


def png(rng: np.random.Generator, size: int = 32) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_containers(folder: Path, n: int, *, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (folder / "tar").mkdir(parents=True, exist_ok=True)
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    for c in range(n // PER_CONTAINER):
        images, labels = [], []
        tar_path = folder / "tar" / f"shard-{c:05d}.tar"
        with tarfile.open(tar_path, "w") as tar:
            for i in range(c * PER_CONTAINER, (c + 1) * PER_CONTAINER):
                data, label = png(rng), str(i % 10).encode()
                for name, blob in ((f"{i:08d}.png", data), (f"{i:08d}.cls", label)):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
                images.append({"bytes": data, "path": f"{i:08d}.png"})
                labels.append(i % 10)
        pq.write_table(pa.table({"image": pa.array(images), "label": pa.array(labels)}),
                       folder / "parquet" / f"part-{c:05d}.parquet", row_group_size=250)


def glob_for(n: int) -> str:
    """A glob of the first n / 1000 containers (10 -> 0000[0-9], 50 -> all of 0..49)."""
    k = n // PER_CONTAINER
    if k == 10:
        return "0000[0-9]"
    if k == 50:
        return "000[0-4][0-9]"
    raise SystemExit(f"sizes must be 10000 or 50000, got {n}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    work = Path(args.workdir)
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = work / "containers"
    t0 = time.perf_counter()
    write_containers(folder, max(sizes), seed=args.seed)
    log.info("%d members written in %.1f s", max(sizes), time.perf_counter() - t0)
    rows = []
    try:
        for fmt, pattern in (("webdataset", "tar/shard-{g}.tar"), ("parquet", "parquet/part-{g}.parquet")):
            for n in sizes:
                spec = f"{fmt}:{folder / pattern.format(g=glob_for(n))}"
                out = work / f"emb_{fmt}_{n}.npy"
                before = machine_load()
                res = run_child([a.format(spec=spec, out=out) for a in CHILD_ARGS], 3600)
                emb = np.load(out, mmap_mode="r")
                assert emb.shape == (n, 64), emb.shape
                names = (work / f"emb_{fmt}_{n}.paths.txt").read_text().splitlines()
                assert len(names) == n and names[0].count("\t") == 1
                rows.append({"format": fmt, "n": n, **res, "members_per_second": n / res["wall_seconds"],
                             "decoded_array_bytes": n * 3 * 32 * 32 * 4, "load_before": before})
                log.info("%s N=%d: %.1f s, peak anon %.0f MB, HWM %.0f MB", fmt, n, res["wall_seconds"],
                         res["peak_RssAnon_bytes"] / 2**20, res["peak_VmHWM_bytes"] / 2**20)
                for f in work.glob(f"emb_{fmt}_{n}*"):
                    f.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    growth = {fmt: [r for r in rows if r["format"] == fmt][-1]["peak_RssAnon_bytes"] /
              [r for r in rows if r["format"] == fmt][0]["peak_RssAnon_bytes"] for fmt in ("webdataset", "parquet")}
    lines = [
        "## Streaming embed of images inside containers (`adaprune embed webdataset:GLOB` / `parquet:GLOB`, "
        "`--encoder pixels:64`)",
        "",
        f"32x32 PNGs, {PER_CONTAINER:,} per tar shard or Parquet file (row groups of 250); fresh process per "
        "run, chunks of 1024 rows within one container. Wall time includes start-up, the one-pass check of every "
        "member, the PCA fit on a sample of at most 10,000 images and the streaming pass. Anon = peak RssAnon "
        "(allocated memory); HWM = kernel peak RSS (also counts the memory-mapped output). The machine was "
        "shared with other jobs: compare times only within a row pair.",
        "",
        "| source | N members | wall s | members / s | peak anon MB | peak HWM MB | decoded images would be MB "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['format']} | {r['n']:,} | {r['wall_seconds']:.1f} | {r['members_per_second']:.0f} | "
                     f"{r['peak_RssAnon_bytes'] / 2**20:.0f} | {r['peak_VmHWM_bytes'] / 2**20:.0f} | "
                     f"{r['decoded_array_bytes'] / 2**20:.0f} | {r['load_before']['loadavg'][0]:.1f} |")
    lines += [""] + [f"Peak allocated memory of {fmt} at {sizes[-1]:,} / at {sizes[0]:,} members: {g:.2f}x "
                     f"(the data grew {sizes[-1] / sizes[0]:.0f}x)." for fmt, g in growth.items()]
    write_results("embed_shards", {"seeds": {"images": args.seed, "pca": 0}, "rows": rows, "anon_growth": growth},
                  "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
