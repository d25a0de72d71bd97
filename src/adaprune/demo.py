"""`make demo`: AdaPruner against random on MNIST-1D at 30% pruned, a few seeds, on the CPU."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from adaprune.api import benchmark

OUT = Path("demo-output")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="adaprune: %(message)s", stream=sys.stderr)
    result = benchmark(
        "mnist1d", ["adapruner", "random"], [0.3], seeds=3, progress=True,
        command="make demo  (python -m adaprune.demo)",
    )
    paths = result.save(OUT)
    sys.stdout.write(result.to_markdown())
    sys.stdout.write(f"\nThe plot is at {paths['plot']}; the numbers at {paths['json']}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
