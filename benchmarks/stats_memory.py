"""Peak memory of building a standardising model on a memory-mapped embeddings set (~256 MB).

Each measurement runs in a fresh interpreter: open the .npy as a memory map, build the task, and
call `task.new_model(0)` (the whole training split's statistics) and `task.new_model(0,
indices=half)` (a subset's). Reported: the process's peak resident memory (ru_maxrss) before the
build and after, and the file size. The mapped file's pages count towards resident memory once
read, so a build that reads the file once and copies nothing adds about the file's size.

    python benchmarks/stats_memory.py [--rows 500000 --dim 128] [--before-src DIR --before-label TEXT]

With `--before-src` (a `src/` folder of another revision, e.g. from `git archive`), its
whole-set build is measured too, on the same file, for a before/after row."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from adaprune.data import Dataset
    from adaprune.tasks.classification import ClassificationTask
    path, subset = sys.argv[1], sys.argv[2] == "subset"
    x = np.load(path, mmap_mode="r")
    task = ClassificationTask(Dataset(name="mm", x=x, y=np.zeros(len(x), dtype=np.int64)), model="mlp")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if subset:
        task.new_model(0, indices=np.arange(0, len(x), 2))
    else:
        task.new_model(0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_mb": before / 1024, "after_mb": after / 1024}))
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--before-src", default=None, help="src/ of another revision to measure too")
    parser.add_argument("--before-label", default="before", help="how to name that revision in the table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emb.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.rows, args.dim))
        for start in range(0, args.rows, 65536):
            stop = min(args.rows, start + 65536)
            out[start:stop] = np.random.default_rng(start).normal(size=(stop - start, args.dim))
        out.flush()
        del out
        file_mb = path.stat().st_size / 2**20
        rows = {}
        runs = [("full", "full", None), ("subset", "subset", None)]
        if args.before_src:
            runs.insert(0, (f"full ({args.before_label})", "full", args.before_src))
        for label, mode, src in runs:
            env = None if src is None else {**os.environ, "PYTHONPATH": src}
            res = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True,
                                 check=True, env=env)
            rows[label] = json.loads(res.stdout.strip().splitlines()[-1])
    payload = {"rows": args.rows, "dim": args.dim, "file_mb": file_mb, "runs": rows,
               "before_src": args.before_src, "before_label": args.before_label}
    lines = ["| statistics of | file (MB) | peak RSS before build (MB) | peak RSS after build (MB) |",
             "|---|---|---|---|"]
    for mode, r in rows.items():
        what = {"full": "all rows", "subset": "every second row (a subset)"}.get(mode, f"all rows, {mode[6:-1]}")
        lines.append(f"| {what} | {file_mb:.0f} | {r['before_mb']:.0f} | {r['after_mb']:.0f} |")
    write_results("stats_memory", payload, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
