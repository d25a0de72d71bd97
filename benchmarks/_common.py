"""Shared bits of the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import adaprune
from adaprune.evaluate.benchmark import machine_info
from adaprune.io_utils import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    return " ".join(["python", "benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def code_revision() -> dict[str, Any]:
    """The commit the benchmark ran on (with `dirty` when the work tree had uncommitted changes,
    so a reader knows the commit alone does not reproduce it) and the package version."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    # Results files are outputs, not code: a results file changed since the last commit is not "dirty" code.
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks",
                     ":(exclude)benchmarks/results"))
    return {"commit": commit, "dirty": dirty, "version": adaprune.__version__}


def write_results(stem: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """benchmarks/results/<stem>.json and .md, each with the machine, the command, the commit and
    the version that made them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    revision = code_revision()
    payload = {"command": command_line(), "machine": machine_info(), "revision": revision, **payload}
    json_path, md_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    commit = revision["commit"][:12] + (" (with uncommitted changes)" if revision["dirty"] else "")
    footer = (
        f"\nCommand: `{payload['command']}`  \nMachine: {payload['machine']['summary']}  \n"
        f"Code: adaprune {revision['version']}, commit {commit}\n"
    )
    atomic_write_text(md_path, markdown + footer)
    return json_path, md_path
