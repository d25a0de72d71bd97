"""`adaprune report` on detection: frames drawn with their boxes (checked in the pixels), removed frames
beside their twins with the cosine, kept share per category and removed share per scene (hand-counted on
the COCO fixture), AdaDeDup's clusters, a detection benchmark folder, and the page opened in headless
Chromium with every image decoded."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from test_detection_data import run_cli, write_coco
from test_report import image_counts, needs_chromium, open_in_chromium

from adaprune.data import load_data
from adaprune.report import render_report, write_report
from adaprune.selection import Selection
from adaprune.tables import write_table

# The fixture's images in order: ids 7, 3, 12, 4, 5, 9, 10, 11 (scenes s1 s1 s2 s2 s3 s3 s4 s4).
KEPT = np.array([0, 1, 2, 4, 6])  # removed: rows 3, 5, 7 (ids 4, 9, 11), each a twin of its scene's other frame
TWINS = {3: (2, 0.97), 5: (4, 0.95), 7: (6, 0.99)}


def write_dedup_selection(path) -> Selection:
    details = {"clusters": {"size": [4, 4], "p_initial": [0.5, 0.25], "final_rate": [0.25, 0.5], "d": [0.1, -0.2]},
               "input_size": 64}
    sel = Selection(kept=KEPT, n_total=8, method="adadedup", params={}, seed=0, requested_keep=5 / 8,
                    details=details)
    twin = np.full(8, -1)
    sim = np.full(8, np.nan)
    for i, (j, c) in TWINS.items():
        twin[i], sim[i] = j, c
    write_table(path, {"index": np.arange(8), "kept": sel.mask.astype(np.int64), "score": None,
                       "id": np.array([7, 3, 12, 4, 5, 9, 10, 11]), "twin": twin, "similarity": sim},
                sel.metadata(), what="selection")
    return sel


def decode_frame(html: str, row: int) -> Image.Image:
    m = re.search(rf'<img class="thumb \w+" data-row="{row}" [^>]*src="data:image/png;base64,([^"]+)"', html)
    assert m, f"no frame for row {row}"
    return Image.open(io.BytesIO(base64.b64decode(m.group(1)))).convert("RGB")


def test_detection_report_shows_boxes_twins_categories_scenes_and_clusters(tmp_path):
    coco = write_coco(tmp_path)
    write_dedup_selection(tmp_path / "sel.csv")
    html = render_report(tmp_path / "sel.csv", data=f"coco:{coco}")
    # Categories by hand: car in ids 7, 3, 12, 5, 10 (all kept); sign in 7, 9, 11 (only 7 kept).
    assert "<tr><td>car</td><td>5</td><td>5</td><td>5</td><td>5</td><td>1.000</td></tr>" in html
    assert "<tr><td>sign</td><td>3</td><td>1</td><td>3</td><td>1</td><td>0.333</td></tr>" in html
    # Scenes (the images' scene_id, no --group-by needed): s2, s3, s4 lose one of two frames, s1 none.
    assert "Share removed per scene_id" in html
    rows = re.findall(r"<tr><td>(s\d)</td><td>2</td><td>(\d)</td><td>([\d.]+)</td></tr>", html)
    assert rows == [("s2", "1", "0.500"), ("s3", "1", "0.500"), ("s4", "1", "0.500"), ("s1", "0", "0.000")]
    captions = re.findall(r'<div class="pair">.*?</div>([^<]*)</div>', html)
    assert sorted(captions) == sorted(["id 4 → id 12 · cos 0.970", "id 9 → id 5 · cos 0.950",
                                       "id 11 → id 10 · cos 0.990"])
    assert "Kept fraction per cluster" in html  # AdaDeDup's per-cluster rates
    # Frames: 3 removed + 5 kept in the galleries, 3 pairs of two.
    assert len(re.findall(r'class="thumb removed"', html)) == 3 + 3
    assert len(re.findall(r'class="thumb kept"', html)) == 5 + 3
    assert not re.search(r'(src|href)="(https?:)?//', html)

    from adaprune.report.detection import PALETTE, frame_scale

    # The boxes are in the pixels: row 0 (id 7, 40x30 letterboxed to 64) has a car box
    # [2.4, 11.2, 18.4, 24.0] and a sign box [32, 24, 40.4, 33.6]; frames are drawn 3x.
    data = load_data(f"coco:{coco}")
    s = frame_scale(64)
    assert s == 3
    frame = decode_frame(html, 0)
    assert frame.size == (192, 192)
    for box, colour in zip(data.boxes[0], (PALETTE[0], PALETTE[1]), strict=True):
        x0, y0, x1, y1 = (int(round(v * s)) for v in box)
        for x, y in ((x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1) // 2, y0)):
            assert frame.getpixel((x, y)) == colour, (box, x, y)
    assert frame.getpixel((96, 72)) == PALETTE[1]  # the sign box's corner, by hand: (32 * 3, 24 * 3)
    # Outside the boxes the frame is the letterboxed image: grey bars above and below.
    assert frame.getpixel((100, 2)) == (114, 114, 114) and frame.getpixel((100, 190)) == (114, 114, 114)


def test_report_on_a_pruned_coco_file_and_on_a_random_selection(tmp_path, capsys):
    """Before: the per-class plot raised FixedLocator's ValueError on every detection selection."""
    coco = write_coco(tmp_path)
    for out in ("sel.parquet", "pruned.json"):
        rc, err = run_cli(["prune", f"coco:{coco}", "--method", "random", "--prune", "0.5", "--out",
                           str(tmp_path / out), "--quiet"], capsys)
        assert rc == 0, err
    rc, err = run_cli(["report", str(tmp_path / "sel.parquet"), "--data", f"coco:{coco}", "--group-by", "scene_id",
                       "--out", str(tmp_path / "r.html")], capsys)
    assert rc == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "Share removed per scene_id" in html and "wrote no `twin` column" in html
    assert len(re.findall(r'class="thumb (kept|removed)"', html)) == 8  # every frame, 4 kept + 4 removed
    from_file = render_report(tmp_path / "pruned.json", data=f"coco:{coco}")
    assert "random kept 4 of 8 images" in from_file


def test_detection_benchmark_folder_plots_map_against_the_fraction_pruned(tmp_path):
    runs = [{"method": m, "prune": p, "seed": 0, "n_kept": 10, "value": v, "prune_seconds": 1.0,
             "extras": {"map50": v + 0.1}} for (m, p), v in {("random", 0.3): 0.21, ("adadedup", 0.3): 0.25}.items()]
    doc = {"dataset": "synthdet", "n_train": 300, "n_test": 200, "model": "auto", "epochs": 3, "metric": "map",
           "methods": ["adadedup", "random"], "prunes": [0.3], "seeds": [0], "full_values": [0.3], "runs": runs,
           "input_size": 128}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text(json.dumps(doc))
    html = render_report(tmp_path / "bench")
    assert "Test mAP@[.5:.95] against fraction pruned" in html
    assert '<td class="better">25.00</td>' in html and "<td>21.00</td>" in html  # one seed: no ± std
    assert "±" not in html.split("<table>")[1].split("</table>")[0]
    assert "<dt>input_size</dt><dd>128</dd>" in html


@pytest.mark.slow
@needs_chromium
def test_detection_report_renders_in_chromium_with_every_image_decoded(tmp_path):
    coco = write_coco(tmp_path)
    write_dedup_selection(tmp_path / "sel.csv")
    page = write_report(tmp_path / "sel.csv", tmp_path / "det.html", data=f"coco:{coco}")
    dom, console = open_in_chromium(page)
    assert console == [], console
    # 3 figures (categories, scenes, clusters) + 8 gallery frames + 3 pairs of two.
    assert image_counts(dom) == (3 + 8 + 6, 3 + 8 + 6)
