"""`adaprune report`: one self-contained HTML page from a benchmark folder or a selection and its data,
checked for content (hand-computed numbers, one picture per sample shown) and opened in headless Chromium
(renders with no console message; every image decodes)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from adaprune.cli.main import main
from adaprune.data import Dataset
from adaprune.errors import ConfigError, DataError
from adaprune.report import render_report, write_report
from adaprune.selection import Selection
from adaprune.tables import write_table

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def write_benchmark(folder: Path) -> Path:
    """Two methods, two fractions, two seeds; accuracies chosen so the means and stds are easy by hand."""
    acc = {("random", 0.2): [0.80, 0.90], ("random", 0.5): [0.70, 0.70],
           ("adapruner", 0.2): [0.90, 0.90], ("adapruner", 0.5): [0.60, 0.64]}
    runs = [{"method": m, "prune": p, "seed": s, "n_kept": 10, "value": v, "prune_seconds": 1.5, "extras": {}}
            for (m, p), vals in acc.items() for s, v in enumerate(vals)]
    doc = {"dataset": "toy", "n_train": 100, "n_test": 20, "model": "mlp", "epochs": 3, "metric": "accuracy",
           "methods": ["adapruner", "random"], "prunes": [0.2, 0.5], "seeds": [0, 1], "full_values": [0.9, 0.92],
           "runs": runs, "machine": {"summary": "test"}, "command": "adaprune benchmark toy"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(doc))
    return folder


def toy_images(n: int = 12) -> Dataset:
    """n 1x8x8 images in two classes; image i+1 is a near copy of image i for even i (the planted duplicates)."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 8, 8)).astype(np.float32)
    x[1::2] = np.clip(x[0::2] + 0.01, 0, 1)
    return Dataset(name="toy-images", x=x, y=(np.arange(n) // (n // 2)).astype(np.int64))


def write_selection(path: Path, *, n: int = 12, twins: bool = True, scores: bool = True) -> Selection:
    kept = np.array([0, 2, 3, 4, 6, 8, 10, 11])  # removed: 1, 5, 7, 9 (duplicates of 0, 4, 6, 8)
    details = {"clusters": {"size": [6, 6], "p_initial": [0.5, 0.25], "final_rate": [0.3333, 0.3333],
                            "d": [0.2, -0.1]}}
    sel = Selection(kept=kept, n_total=n, method="semdedup", params={"epsilon": 0.1}, seed=0, requested_keep=8 / 12,
                    scores=np.linspace(0, 1, n) if scores else None, higher_is_keep=False, details=details)
    columns = {"index": np.arange(n), "kept": sel.mask.astype(np.int64), "score": sel.scores}
    if twins:
        twin = np.full(n, -1)
        twin[[1, 5, 7, 9]] = [0, 4, 6, 8]
        columns |= {"twin": twin, "similarity": np.where(twin >= 0, 0.99, np.nan)}
    write_table(path, columns, sel.metadata(), what="selection")
    return sel


def test_benchmark_report_has_the_hand_computed_table_and_one_inline_plot(tmp_path):
    out = write_report(write_benchmark(tmp_path / "bench"), tmp_path / "r.html")
    text = out.read_text()
    # adapruner at 50%: mean 62.00, sample std of (60, 64) = 2.83; below random's 70.00 -> marked worse.
    assert '<td class="worse">62.00 ± 2.83</td>' in text
    assert '<td class="better">90.00 ± 0.00</td>' in text  # 20%: 90 vs random 85
    assert "<td>85.00 ± 7.07</td>" in text and "91.00 ± 1.41" in text  # random 20%; full data
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == 1
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing to fetch


def test_selection_report_shows_classes_clusters_twins_and_extremes(tmp_path):
    write_selection(tmp_path / "sel.csv")
    text = render_report(tmp_path / "sel.csv", data=toy_images())
    # Class 0 is samples 0-5 (kept 0, 2, 3, 4), class 1 is 6-11 (kept 6, 8, 10, 11).
    assert "<tr><td>0</td><td>6</td><td>4</td><td>0.667</td></tr>" in text
    # Cluster 0's kept fraction moved from 0.5 to 0.667 and has loss gap +0.2.
    assert "<td>0.500</td><td>0.667</td><td>+0.167</td><td>+0.2000</td>" in text
    pairs = re.findall(r'<div class="pair">.*?</div>([^<]*)</div>', text)
    assert sorted(pairs) == sorted(f"#{i} → kept twin #{i - 1} · cos 0.990" for i in (1, 5, 7, 9))
    # Two classes x (6 highest + 6 lowest) thumbnails, plus two per pair.
    assert text.count('class="thumb ') == 2 * 12 + 2 * 4
    assert "Not shown" not in text


def test_removals_are_sampled_down_to_the_cut_and_the_histogram_marks_it(tmp_path):
    """80 samples, the 40 with the highest M removed (a single cut at 0.9), each naming a kept twin:
    beside the 36 most similar, removals at evenly spaced ranks reach the least similar one."""
    n = 80
    rng = np.random.default_rng(1)
    m = np.concatenate([rng.uniform(0.1, 0.89, 40), np.linspace(0.999, 0.9, 40)])  # rows 40-79 removed
    sel = Selection(kept=np.arange(40), n_total=n, method="semdedup", params={}, seed=0, requested_keep=0.5,
                    scores=m, higher_is_keep=False)
    twin = np.where(np.arange(n) >= 40, np.arange(n) - 40, -1)
    write_table(tmp_path / "sel.csv", {"index": np.arange(n), "kept": sel.mask.astype(np.int64), "score": m,
                                       "twin": twin, "similarity": np.where(twin >= 0, m, np.nan)},
                sel.metadata(), what="selection")
    data = Dataset(name="toy-images", x=rng.random((n, 1, 8, 8)).astype(np.float32), y=np.zeros(n, dtype=np.int64))
    text = render_report(tmp_path / "sel.csv", data=data)
    assert "The cut at 0.9 separates every kept sample from every removed one." in text
    assert "Histogram of M with the cut" in text
    top, sampled = text.split("Removals across the similarity range")
    assert "#79 → kept twin #39 · cos 0.900" not in top  # the least similar is past the 36 most similar
    captions = re.findall(r'<div class="pair">.*?</div>([^<]*)</div>', sampled)
    assert len(captions) == 12
    assert captions[0] == "#40 → kept twin #0 · cos 0.999" and captions[-1] == "#79 → kept twin #39 · cos 0.900"


def test_score_cut_is_the_boundary_only_when_one_exists():
    from adaprune.report.selection import score_cut

    scores = np.array([0.1, 0.5, 0.7, 0.9])
    assert score_cut(scores, np.array([True, True, False, False]), False) == 0.7  # lower kept: lowest removed
    assert score_cut(scores, np.array([False, False, True, True]), True) == 0.5  # higher kept: highest removed
    assert score_cut(scores, np.array([True, False, True, False]), False) is None  # overlap: no single cut
    assert score_cut(scores, np.array([True, True, False, False]), None) is None


def test_selection_report_degrades_without_twins_scores_or_data(tmp_path):
    write_selection(tmp_path / "sel.json", twins=False, scores=False)
    text = render_report(tmp_path / "sel.json", data=toy_images())
    assert "wrote no `twin` column" in text and "wrote no scores" in text and 'class="thumb' not in text
    bare = render_report(tmp_path / "sel.json")
    assert "No data given" in bare and "Kept fraction per cluster" in bare


def test_report_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    write_selection(tmp_path / "sel.csv")
    with pytest.raises(DataError, match="covers 12 samples but the data 'toy-images' has 10"):
        render_report(tmp_path / "sel.csv", data=toy_images(10))
    with pytest.raises(ConfigError, match="must end in .html"):
        write_report(tmp_path / "sel.csv", tmp_path / "r.txt")
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def open_in_chromium(page: Path) -> tuple[str, list[str]]:
    """The DOM after load, and every console message the page produced."""
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, [line for line in res.stderr.splitlines() if ":CONSOLE" in line]


def image_counts(dom: str) -> tuple[int, int]:
    total = re.search(r'data-images-total="(\d+)"', dom)
    decoded = re.search(r'data-images-decoded="(\d+)"', dom)
    assert total and decoded, "the page's image check did not run"
    return int(total.group(1)), int(decoded.group(1))


@pytest.mark.slow
@needs_chromium
def test_reports_render_in_chromium_with_every_image_decoded(tmp_path):
    write_selection(tmp_path / "sel.parquet")
    pages = [write_report(write_benchmark(tmp_path / "bench"), tmp_path / "bench.html"),
             write_report(tmp_path / "sel.parquet", tmp_path / "sel.html", data=toy_images())]
    # A control: a broken picture and a script error must be caught, or the checks below prove nothing.
    broken = tmp_path / "broken.html"
    broken.write_text(pages[0].read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
                      .replace("</main>", "<script>undefinedFunction()</script></main>"))
    dom, console = open_in_chromium(broken)
    total, decoded = image_counts(dom)
    assert decoded == total - 1 and any("undefinedFunction" in line for line in console)
    # figures (classes, clusters, the histogram of M) + thumbnails
    for page, expected in zip(pages, (1, 3 + 2 * 12 + 2 * 4), strict=True):
        dom, console = open_in_chromium(page)
        assert console == [], console
        assert image_counts(dom) == (expected, expected)
