"""Every ```python block of README.md runs as written, in order, in one namespace (as a reader
pasting them into one session would), on small data.

A block that cannot run here is marked just above its fence with
`<!-- readme-test: skip REASON -->` (the reason is required). The names the "bring your own loop"
blocks take from the reader's own code (`train_set`, `model`, `criterion`, ...) are provided; the
mnist1d source is generated with 300 training samples instead of 4000 so the quick start takes
seconds (the code of the blocks is not changed)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import make_blobs

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<tag>[^>]*?)\s*-->\s*\n)?^```python\n(?P<code>.*?)^```",
                   flags=re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line, code, skip reason or None) of every python block."""
    out = []
    for match in BLOCK.finditer(text):
        tag = (match.group("tag") or "").strip()
        reason = None
        if tag.startswith("skip"):
            reason = tag[len("skip"):].strip(" :-")
            assert reason, f"README.md line {text[:match.start()].count(chr(10)) + 1}: a skip needs a reason"
        line = text[: match.start("code")].count("\n") + 1
        out.append((line, match.group("code"), reason))
    return out


def test_block_finder_sees_skips_and_plain_blocks():
    text = "x\n```python\na = 1\n```\n<!-- readme-test: skip needs a GPU -->\n```python\nb = 2\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n", None), (7, "b = 2\n", "needs a GPU")]


def reader_namespace() -> dict:
    """What the own-loop blocks assume the reader has: a map-style dataset, a model, a per-sample
    criterion, an optimizer, a logit history and labels, and arrays for scikit-learn."""
    x, y = make_blobs(n=80, d=6, classes=10, seed=0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 10))
    return {
        "__name__": "readme",
        "train_set": TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        "model": model,
        "criterion": nn.CrossEntropyLoss(reduction="none"),
        "opt": torch.optim.SGD(model.parameters(), lr=0.05),
        "logit_history": np.random.default_rng(0).normal(size=(4, 80, 10)),
        "labels": y,
        "X_train": x,
        "y_train": np.array(list("abcdefghij"))[y],
    }


def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    import adaprune.data.sources as sources

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "load_mnist1d", functools.partial(sources.load_mnist1d, n_train=300))
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no python block"
    namespace = reader_namespace()
    ran = 0
    for line, code, reason in blocks:
        if reason is not None:
            continue
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            pytest.fail(f"README.md python block at line {line} failed: {type(exc).__name__}: {exc}")
        ran += 1
    assert ran >= 1
    # The quick start's names are the API's, whatever a block imported before it.
    import adaprune
    import adaprune.api

    assert adaprune.evaluate is adaprune.api.evaluate


def test_evaluate_stays_the_function_after_its_subpackage_is_imported():
    """`load_data` imports adaprune.evaluate.harness; the public `adaprune.evaluate` is still the
    function afterwards, and the subpackage is still importable by its dotted name."""
    import subprocess
    import sys

    # One fresh interpreter: first the subpackage imported before anyone asked for the function,
    # then the function asked for and the subpackage imported again by its dotted names.
    code = (
        "import adaprune.evaluate.benchmark, adaprune\n"
        "assert callable(adaprune.evaluate), adaprune.evaluate\n"
        "f = adaprune.evaluate\n"
        "import adaprune.evaluate.harness\n"
        "from adaprune.evaluate.harness import train_and_test\n"
        "from adaprune.evaluate import plots\n"
        "import adaprune.api\n"
        "assert adaprune.evaluate is f is adaprune.api.evaluate, adaprune.evaluate\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr

