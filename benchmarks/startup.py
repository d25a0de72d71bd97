"""Start-up time of the light commands (`adaprune --help`, `--version`, `methods`, `methods -v`):
each in a fresh interpreter, repeated, median wall and CPU time. Two references in the same run:
`python -c "import torch"` (what every command paid before) and, with --before REV, the same
commands on that git revision's source (extracted with `git archive`, no stash, no checkout).

    python benchmarks/startup.py --before 9162a42
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMANDS = (["--help"], ["--version"], ["methods"], ["methods", "-v"])


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(label: str, argv: list[str], src: Path | None, repeats: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    timed(argv, env)  # warm the file cache
    walls, cpus = zip(*(timed(argv, env) for _ in range(repeats)), strict=True)
    return {"label": label, "command": " ".join(argv[1:]) if argv[0] == sys.executable else " ".join(argv),
            "wall_median_s": round(statistics.median(walls), 3), "cpu_median_s": round(statistics.median(cpus), 3),
            "wall_max_s": round(max(walls), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, metavar="REV", help="Also time this git revision's source.")
    parser.add_argument("--note", default="", help="e.g. that the machine was shared with other jobs.")
    args = parser.parse_args()
    rows = [measure("reference", [sys.executable, "-c", "import torch"], None, args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        sources = [("now", ROOT / "src")]
        if args.before:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            sources.insert(0, (f"before ({args.before})", Path(tmp) / "src"))
        for label, src in sources:
            rows.append(measure(label, [sys.executable, "-c", "import adaprune"], src, args.repeats))
            for cmd in COMMANDS:
                rows.append(measure(label, [sys.executable, "-m", "adaprune", *cmd], src, args.repeats))
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "load_average": [round(v, 2) for v in os.getloadavg()]}
    command = "python benchmarks/startup.py" + (f" --before {args.before}" if args.before else "")
    doc = {"rows": rows, "repeats": args.repeats, "machine": machine, "command": command, "note": args.note}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"Start-up of light commands: median of {args.repeats} fresh interpreters (after one warm-up), "
             "OMP_NUM_THREADS=1. CPU = user + sys of the child.", "",
             "| source | command | wall median (s) | CPU median (s) | wall max (s) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | `{r['command']}` | {r['wall_median_s']:.2f} | {r['cpu_median_s']:.2f} | "
                     f"{r['wall_max_s']:.2f} |")
    lines += ["", f"Command: `{command}`",
              f"Machine: {machine['cpu_count']} CPUs, {machine['platform']}, Python {machine['python']}, "
              f"load average at the end {machine['load_average']}."]
    if args.note:
        lines.append(f"Note: {args.note}")
    (RESULTS / "startup.md").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
