"""SemDeDup from 1e5 to 1e7 x 256 float32 embeddings, end to end through `adaprune prune embeddings:...`.

The synthetic array (mixture of Gaussians with 10% planted near-duplicates, `scale_dedup.make_embeddings`)
is written in chunks from a seeded generator to --workdir (outside the repository; ~10 GB at 1e7) and
deleted afterwards. For every N a fresh process runs

    python -m adaprune prune embeddings:X.npy --method semdedup --prune 0.1 --out sel.parquet --quiet

and the parent samples the child's /proc/PID/status every 0.1 s: peak RssAnon (memory the process
allocated), peak RssFile (pages of the memory-mapped array resident in the process's page tables:
the OS can drop them at any time, they are page cache mapped into the process, not allocations) and
VmHWM (the kernel's peak of their sum). The child also reports per-stage seconds (load, k-means
training + assignment, per-cluster M, writing) and its CPU time (user + system): on a machine
shared with other jobs the CPU time is what the run costs, the wall time what it got. `uptime`
and the other busy processes are recorded before and after each run, since the machine is shared."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _common import code_revision, write_results
from scale_dedup import make_embeddings, quality

log = logging.getLogger("scale_1e7")

CHILD = r"""
import json, sys, time
timing = {}
def timed(mod, name, key):
    fn = getattr(mod, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timing[key] = timing.get(key, 0.0) + time.perf_counter() - t
    setattr(mod, name, wrapper)
start = time.perf_counter()
import adaprune.cli.prune, adaprune.data, adaprune.methods.semdedup as sd, adaprune.selection as sel
timed(adaprune.data, "load_data", "load_s")
timed(sd, "spherical_kmeans", "kmeans_s")
timed(sd, "split_oversized", "split_s")
timed(sd, "semdedup_redundancy", "redundancy_s")
import adaprune.methods._causes as causes
timed(causes, "attach_audit", "audit_s")
timed(sel.Selection, "save", "write_s")
from adaprune.cli.main import main
code = main(sys.argv[1:])
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rc": code, "seconds_in_process": time.perf_counter() - start, **timing,
                  "cpu_user_s": usage.ru_utime, "cpu_system_s": usage.ru_stime}))
"""


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def machine_load() -> dict:
    load = os.getloadavg()
    ps = subprocess.run(["ps", "-eo", "pcpu,rss,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busy = [line.split(None, 2) for line in ps.splitlines()[1:] if line.strip()]
    busy = [{"cpu_percent": float(c), "rss_mb": int(r) / 1024, "command": n} for c, r, n in busy if float(c) >= 5]
    with open("/proc/meminfo") as fh:
        mem = {line.split(":")[0]: int(line.split()[1]) for line in fh}
    return {"loadavg": load, "busy_processes": busy[:10], "mem_available_gb": mem["MemAvailable"] / 2**20}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_child(args: list[str], timeout: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0, "VmHWM": 0}
    last_cpu = {"s": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for key, value in status_kb(proc.pid).items():
                peaks[key] = max(peaks[key], value)
            cpu = cpu_seconds(proc.pid)
            if cpu is not None:
                last_cpu["s"] = cpu
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        stop.set()
        thread.join()
        # Stopped at the deadline: what it had used so far.
        return {"finished": False, "wall_seconds": time.perf_counter() - start, "cpu_user_s": last_cpu["s"],
                "cpu_system_s": 0.0, **{f"peak_{k}_bytes": v * 1024 for k, v in peaks.items()}}
    finally:
        stop.set()
        thread.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {err[-2000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    return {**res, "finished": True, "wall_seconds": wall,
            **{f"peak_{k}_bytes": v * 1024 for k, v in peaks.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--noise", type=float, default=0.75)
    parser.add_argument("--label", default="uneven", help="what the row's data is (shown in the table)")
    parser.add_argument("--workdir", required=True, help="folder outside the repository for the arrays")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--deadline-unix", type=float, default=None,
                        help="stop a run still going at this time (recorded as unfinished, with its peaks)")
    parser.add_argument("--stem", default="scale_1e7")
    parser.add_argument("--data", default=None,
                        help="an array already written by make_embeddings (with planted_copies.npy and "
                             "planted_originals.npy beside it) for the one size in --sizes; kept afterwards")
    parser.add_argument("--append", action="store_true", help="add the rows to benchmarks/results/STEM.json")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the markdown from benchmarks/results/STEM.json without running anything")
    args = parser.parse_args()
    if args.report_only:
        from _common import RESULTS

        report(json.loads((RESULTS / f"{args.stem}.json").read_text())["rows"], args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.append:
        from _common import RESULTS

        rows = json.loads((RESULTS / f"{args.stem}.json").read_text())["rows"]
    for n in [int(s) for s in args.sizes.split(",")]:
        path, sel = work / f"emb_{n}.npy", work / f"sel_{n}.parquet"
        if args.data is not None:
            path = Path(args.data)
        try:
            t0 = time.perf_counter()
            if args.data is not None:
                copies = np.load(path.with_name("planted_copies.npy"))
                originals = np.load(path.with_name("planted_originals.npy"))
                if np.load(path, mmap_mode="r").shape != (n, args.dim):
                    raise SystemExit(f"{path} is not a ({n}, {args.dim}) array")
            else:
                copies, originals = make_embeddings(path, n, args.dim, share=args.share,
                                                    components=args.components, seed=args.seed, dtype=args.dtype,
                                                    noise=args.noise)
            write_s = time.perf_counter() - t0
            log.info("N=%d: data written in %.1f s", n, write_s)
            before = machine_load()
            revision = code_revision()  # each row names its code (the file may collect several runs)
            timeout = args.timeout
            if args.deadline_unix is not None:
                timeout = max(1.0, min(timeout, args.deadline_unix - time.time()))
            res = run_child(["prune", f"embeddings:{path}", "--method", "semdedup", "--prune", str(args.share),
                             "--seed", str(args.seed), "--out", str(sel), "--quiet"], timeout)
            after = machine_load()
            array_bytes = n * args.dim * np.dtype(args.dtype).itemsize
            if not res["finished"]:
                rows.append({"revision": revision, "n": n, "dim": args.dim, "dtype": args.dtype,
                             "label": args.label,
                             "components": args.components, "noise": args.noise,
                             "array_bytes": array_bytes, "data_write_seconds": write_s, **res,
                             "anon_over_array": res["peak_RssAnon_bytes"] / array_bytes,
                             "hwm_over_array": res["peak_VmHWM_bytes"] / array_bytes,
                             "load_before": before, "load_after": after})
                log.info("N=%d: stopped at the deadline after %.0f s", n, res["wall_seconds"])
                report(rows, args)
                continue
            from adaprune.selection import Selection

            selection = Selection.load(sel)
            removed = np.flatnonzero(~selection.mask)
            row = {"revision": revision, "n": n, "dim": args.dim, "dtype": args.dtype, "label": args.label,
                   "components": args.components,
                   "noise": args.noise, "array_bytes": array_bytes, "data_write_seconds": write_s, **res,
                   "anon_over_array": res["peak_RssAnon_bytes"] / array_bytes,
                   "hwm_over_array": res["peak_VmHWM_bytes"] / array_bytes,
                   "clusters": selection.details.get("clusters"),
                   "split_clusters": selection.details.get("split_clusters", 0),
                   "load_before": before, "load_after": after,
                   **quality(removed, copies, originals, n)}
            rows.append(row)
            log.info("N=%d: %.1f s, anon %.2fx, hwm %.2fx array, pairs %.4f, stages %s", n, row["wall_seconds"],
                     row["anon_over_array"], row["hwm_over_array"], row["pairs_resolved"],
                     {k: round(v, 1) for k, v in res.items() if k.endswith("_s")})
            report(rows, args)
        finally:
            for f in ((path,) if args.data is None else ()) + (sel, Path(str(sel) + ".meta.json")):
                f.unlink(missing_ok=True)
    return 0


def report(rows: list[dict], args) -> None:
    """The JSON and markdown so far (written after every N, so a stopped run leaves its table)."""
    done = [r for r in rows if r["finished"]]
    lines = [
        "## SemDeDup end to end at scale (`adaprune prune embeddings:X.npy --method semdedup --prune 0.1`)",
        "",
        "Fresh process per row; wall time includes start-up, loading (with the finite-values check), k-means "
        "(training + assignment), splitting oversized clusters, M, the audit trail (twins and causes, one pass) "
        "and writing "
        "the parquet. K is the number of clusters after the split (split = clusters split into parts); "
        "cluster sizes are after the split. Anon = peak RssAnon (allocated memory); HWM = kernel peak RSS, "
        "which also counts the pages of the memory-mapped array resident in the process (page cache the OS "
        "may drop, not allocations). Pairs resolved: planted near-copies (10% of the rows) of which one row "
        "was removed, with the count missed.",
        "",
        "| commit | data | N | D | stored | K (split) | largest / median | wall s | CPU s | load s | k-means s "
        "| split s "
        "| M s | twins + causes s | write s | anon GB | anon / array | HWM / array | pairs resolved (missed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        commit = r.get("revision", {}).get("commit", "?")[:7] + ("+" if r.get("revision", {}).get("dirty") else "")
        head = (f"| {commit} | {r.get('label', 'uneven')} | {r['n']:,} | {r.get('dim', 256)} "
                f"| {r.get('dtype', 'float32')} ")
        if not r["finished"]:
            lines.append(head + f"| | | stopped at {r['wall_seconds']:.0f} | {r['cpu_user_s']:.0f} so far "
                         + "| | | | | | | " + f"{r['peak_RssAnon_bytes'] / 2**30:.2f} | {r['anon_over_array']:.2f} "
                         f"| {r['hwm_over_array']:.2f} | |")
            continue
        c = r["clusters"]
        missed = int(round((1 - r["pairs_resolved"]) * r["n"] * args.share))
        lines.append(
            head + f"| {c['n_clusters']:,} ({r.get('split_clusters', 0):,}) "
            f"| {c['size_max']:,} / {c['size_median']:.0f} "
            f"| {r['wall_seconds']:.1f} | {r['cpu_user_s'] + r['cpu_system_s']:.1f} | {r.get('load_s', 0):.1f} "
            f"| {r.get('kmeans_s', 0):.1f} | {r.get('split_s', 0):.1f} | {r.get('redundancy_s', 0):.1f} "
            f"| {r.get('audit_s', r.get('twins_s', 0) + r.get('causes_s', 0)):.1f} | {r.get('write_s', 0):.1f} "
            f"| {r['peak_RssAnon_bytes'] / 2**30:.2f} | {r['anon_over_array']:.2f} | {r['hwm_over_array']:.2f} "
            f"| {r['pairs_resolved']:.6f} ({missed:,}) |"
        )
    # Growth against N within each kind of data: wall / (N log N), relative to the smallest N.
    growth = []
    kinds = sorted({(r.get("label", "uneven"), r.get("dim", 256), r.get("dtype", "float32")) for r in done})
    for kind in kinds:
        # The latest row for each N (a size rerun replaces its earlier row in the growth figures).
        latest = {r["n"]: r for r in done
                  if (r.get("label", "uneven"), r.get("dim", 256), r.get("dtype", "float32")) == kind}
        same = [latest[n] for n in sorted(latest)]
        if len(same) < 2:
            continue
        base = same[0]["wall_seconds"] / (same[0]["n"] * np.log(same[0]["n"]))
        ratios = [r["wall_seconds"] / (r["n"] * np.log(r["n"])) / base for r in same]
        slopes = [float(np.log(b["wall_seconds"] / a["wall_seconds"]) / np.log(b["n"] / a["n"]))
                  for a, b in zip(same, same[1:], strict=False)]
        growth.append({"data": kind[0], "dim": kind[1], "dtype": kind[2], "n": [r["n"] for r in same],
                       "wall_over_nlogn": ratios, "slopes": slopes})
        lines += ["", f"{kind[0]}, D = {kind[1]}, {kind[2]}: wall / (N log N) relative to N = {same[0]['n']:,}: "
                  + ", ".join(f"{x:.2f}" for x in ratios) + "; log-log slope per segment: "
                  + ", ".join(f"{x:.2f}" for x in slopes) + " (1.0 = linear; N log N reads about 1.1)."]
    loads = ", ".join(f"{r['load_before']['loadavg'][0]:.1f}" for r in rows)
    lines += ["", f"Load average (1 min) before each row: {loads} (2 cores)."]
    write_results(args.stem, {"seeds": {"data": args.seed, "method": args.seed}, "rows": rows, "growth": growth},
                  "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
