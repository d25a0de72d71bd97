"""Writes benchmarks/README.md: every results table under benchmarks/results/, each stamped with the
commit and version that made it, so the README and docs/ can point here instead of copying tables.

Results files written since stamps were added carry `revision` in their JSON (commit, dirty flag,
version). Older files do not; for those the stamp is the commit that added the file to git, and the
index says so (it is the closest record of the code that made them, not a guarantee)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from _common import RESULTS

from adaprune.io_utils import atomic_write_text

ROOT = Path(__file__).resolve().parent
INTRO = """# Benchmarks

Each script in this folder writes a JSON and a markdown table under `benchmarks/results/`, with the
machine, the command, the seeds and (since December 2026) the commit and version that made it.
This page is generated from those files by `python benchmarks/make_index.py`; do not edit it by hand.
Quality tables report mean ± sample std over seeds; where a paired difference is given, its 95%
interval is a t interval over the paired seeds, and a gap whose interval holds zero is a tie.
Timings were taken on a 2-core machine usually shared with other jobs: read them as the ratios
measured side by side in one run, not as absolute seconds.

"""


def stamp(md: Path) -> str:
    json_path = md.with_suffix(".json")
    if json_path.exists():
        try:
            revision = json.loads(json_path.read_text()).get("revision")
        except (json.JSONDecodeError, AttributeError):
            revision = None
        if revision:
            dirty = " (with uncommitted changes)" if revision.get("dirty") else ""
            return f"made by adaprune {revision['version']} at commit `{revision['commit'][:12]}`{dirty}"
    added = subprocess.run(
        ["git", "log", "--diff-filter=AM", "-1", "--format=%h %ad", "--date=short", "--", str(md)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()
    if not added:
        return "not yet committed"
    commit, date = added.split(" ", 1)
    return f"predates commit stamps; last committed in `{commit}` ({date})"


def demote(text: str) -> str:
    """Headings inside a results file sit below its section here."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text, flags=re.M)


def main() -> int:
    parts = [INTRO, "## Contents\n\n"]
    files = sorted(RESULTS.glob("*.md"))
    parts += [f"- [{md.stem}](#{md.stem.replace('_', '-').lower()})\n" for md in files]
    parts.append("\n")
    for md in files:
        body = md.read_text().strip()
        parts.append(f"## {md.stem}\n\n`results/{md.name}`, {stamp(md)}.\n\n{demote(body)}\n\n")
    atomic_write_text(ROOT / "README.md", "".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
