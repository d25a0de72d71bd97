"""Shared bits of the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from adaprune.evaluate.benchmark import machine_info
from adaprune.io_utils import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    return " ".join(["python", "benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def write_results(stem: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """benchmarks/results/<stem>.json and .md, each with the machine and the command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "machine": machine_info(), **payload}
    json_path, md_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    footer = f"\nCommand: `{payload['command']}`  \nMachine: {payload['machine']['summary']}\n"
    atomic_write_text(md_path, markdown + footer)
    return json_path, md_path
