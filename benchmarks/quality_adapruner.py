"""Quality: AdaPruner vs random on mnist1d and digits at 10/20/30/50% pruned, 3 seeds.

Each (method, fraction, seed) prunes with that seed and trains a fresh model with that seed; the
full-data accuracy is measured once per seed. Test accuracy is read once, after the last epoch."""

from __future__ import annotations

import argparse
import logging
import sys

from _common import RESULTS, command_line, write_results

from adaprune.api import benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--prune", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    prunes = [float(p) for p in args.prune.split(",")]
    sections, payload = [], {"seeds": list(range(args.seeds)), "datasets": {}}
    for name in args.datasets.split(","):
        result = benchmark(name, ["adapruner", "random"], prunes, seeds=args.seeds, epochs=args.epochs,
                           progress=False, command=command_line())
        result.save(RESULTS / "adapruner_quality" / name)
        payload["datasets"][name] = result.to_dict()
        sections.append(f"### {name}\n\n" + result.to_markdown().split("\nCommand:")[0])
    write_results("adapruner_quality", payload, "## AdaPruner vs random: test accuracy\n\n" + "\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
