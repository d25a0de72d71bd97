"""What `make demo` and `make test` install from nothing: a fresh venv and an empty pip cache per
target, the project's own constraints. Sizes: the wheels of every installed package (fetched again
afterwards with `pip download --no-deps` of the exact pins, so local and remote wheels count alike)
and the venv on disk; time: wall clock of the pip install (the machine may be shared: see the note).

    python benchmarks/install_weight.py            # writes benchmarks/results/install_weight.{json,md}
    python benchmarks/install_weight.py --sizes-only   # adds wheel sizes to an existing install_weight.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The extras each make target installs (see the Makefile).
TARGETS = {"demo": "mnist1d", "test": "test"}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def wheel_bytes(packages: list[str], python: str, folder: Path) -> int:
    """Total size of the wheels of these exact pins (the project itself excluded)."""
    pins = [p for p in packages if not p.startswith("adaprune==")]
    subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps", "--no-cache-dir", "-d", str(folder), *pins],
                   check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return folder_bytes(folder)


def measure(target: str, extra: str, python: str, work: Path) -> dict:
    venv = work / f"venv-{target}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    empty = folder_bytes(venv)
    report = work / f"report-{target}.json"
    cache = work / f"cache-{target}"
    cache.mkdir()
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--report", str(report),
           "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[{extra}]"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                                         "PIP_CACHE_DIR": str(cache)})
    seconds = time.perf_counter() - start
    installed = json.loads(report.read_text())["install"]
    packages = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installed)
    largest = sorted(((folder_bytes(p), p.name) for p in (venv / "lib").glob("python*/site-packages/*")
                      if p.is_dir()), reverse=True)[:6]
    return {
        "target": f"make {target}", "extra": extra, "pip_seconds": round(seconds, 1),
        "wheels_mb": round(wheel_bytes(packages, str(venv / "bin" / "python"), work / f"wheels-{target}") / 1e6, 1),
        "venv_mb": round((folder_bytes(venv) - empty) / 1e6, 1), "n_packages": len(packages),
        "packages": packages, "largest_mb": {name: round(size / 1e6, 1) for size, name in largest},
        "command": " ".join(cmd[1:]).replace(str(work), "$TMP"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="Interpreter the venvs are made from.")
    parser.add_argument("--note", default="", help="e.g. that the machine was shared with other jobs.")
    parser.add_argument("--sizes-only", action="store_true",
                        help="Only add wheel sizes to the rows of an existing install_weight.json.")
    args = parser.parse_args()
    if args.sizes_only:
        doc = json.loads((RESULTS / "install_weight.json").read_text())
        with tempfile.TemporaryDirectory(prefix="adaprune-wheels-") as tmp:
            for row in doc["rows"]:
                row["wheels_mb"] = round(wheel_bytes(row["packages"], args.python, Path(tmp) / row["extra"]) / 1e6, 1)
        write(doc)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="adaprune-install-") as tmp:
        for target, extra in TARGETS.items():
            rows.append(measure(target, extra, args.python, Path(tmp)))
            print(f"make {target}: {rows[-1]['pip_seconds']} s, wheels {rows[-1]['wheels_mb']} MB, "
                  f"venv {rows[-1]['venv_mb']} MB", file=sys.stderr)
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "pip_index": "pip's configured sources here: local wheel folders (torch CPU, most of the stack) "
               "and PyPI for the rest"}
    doc = {"rows": rows, "machine": machine, "note": args.note,
           "command": "python benchmarks/install_weight.py" + (f" --note {args.note!r}" if args.note else "")}
    write(doc)
    return 0


def write(doc: dict) -> None:
    rows, machine = doc["rows"], doc["machine"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "install_weight.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["What each set-up command installs into a fresh venv (an empty pip cache, the project's constraints). "
             "Wheels: the size of every installed package's wheel.", "",
             "| command | extra | packages | wheels fetched (MB) | venv on disk (MB) | pip time (s) | largest |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        big = ", ".join(f"{k} {v}" for k, v in list(r["largest_mb"].items())[:4])
        lines.append(f"| `{r['target']}` | `{r['extra']}` | {r['n_packages']} | {r['wheels_mb']} | {r['venv_mb']} | "
                     f"{r['pip_seconds']} | {big} |")
    lines += ["", f"Command: `{doc['command']}`", f"Machine: {machine['cpu_count']} CPUs, {machine['platform']}, "
              f"Python {machine['python']}; {machine['pip_index']}."]
    if doc.get("note"):
        lines.append(f"Note: {doc['note']}")
    (RESULTS / "install_weight.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
