"""The report of a detection selection: frames drawn with their boxes (kept and removed marked),
each removed frame beside the kept frame it duplicates with their cosine (SemDeDup, AdaDeDup), the
kept share per category (images and objects), the share removed per group or scene, and AdaDeDup's
per-cluster rates. Frames are drawn in input pixels (as the model saw them, letterboxed), boxes
over them in one colour per category."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.report._html import esc, figure_img, meta_list, new_figure, page, section, table
from adaprune.report.selection import _per_cluster
from adaprune.selection import Selection

MAX_FRAMES = 16  # per gallery: kept frames, removed frames
MAX_PAIRS = 24  # removed frames beside their twins: half the most similar, half nearest the cut
MAX_GROUPS_SHOWN = 30
THUMB_SIDE = 160  # frames are drawn at least this many pixels wide (nearest-neighbour upscaling)
BOX_WIDTH = 2
# One colour per category (Tableau 10), cycled past ten.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def category_colour(c: int) -> tuple[int, int, int]:
    return PALETTE[c % len(PALETTE)]


def frame_scale(input_size: int) -> int:
    """The whole-number factor frames of `input_size` px are enlarged by in the report."""
    return max(1, -(-THUMB_SIDE // input_size))


def draw_frame(data: Any, i: int) -> Any:
    """Training image i as a Pillow image, enlarged by `frame_scale`, its boxes drawn in their
    category's colour (a box [x0, y0, x1, y1] in input pixels covers [x0 * s, x1 * s) on the picture)."""
    from PIL import Image, ImageDraw

    pixels = np.clip(np.asarray(data.x[i], dtype=np.float64), 0, 1)
    img = Image.fromarray((255 * pixels + 0.5).astype(np.uint8).transpose(1, 2, 0))
    s = frame_scale(data.input_size)
    img = img.resize((img.size[0] * s, img.size[1] * s), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    for box, c in zip(np.asarray(data.boxes[i], dtype=np.float64).reshape(-1, 4), data.labels[i], strict=True):
        x0, y0, x1, y1 = (int(round(v * s)) for v in box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=category_colour(int(c)), width=BOX_WIDTH)
    return img


def _name(data: Any, i: int) -> str:
    value = data.ids[i]
    return Path(str(value)).name if data.id_column == "path" else f"id {value}"


def frame_img(data: Any, i: int, *, kept: bool, caption: str = "") -> str:
    buf = io.BytesIO()
    draw_frame(data, i).save(buf, format="PNG")
    src = base64.b64encode(buf.getvalue()).decode("ascii")
    status = "kept" if kept else "removed"
    title = f"{_name(data, i)} ({status}, {len(data.boxes[i])} boxes){caption}"
    return (f"<img class=\"thumb {status}\" data-row=\"{i}\" title=\"{esc(title)}\" alt=\"{esc(title)}\" "
            f"src=\"data:image/png;base64,{src}\">")


def _legend(data: Any) -> str:
    items = "".join(
        f"<span style=\"display:inline-block;margin-right:12px\"><span style=\"display:inline-block;width:12px;"
        f"height:12px;border:2px solid rgb{category_colour(c)};vertical-align:middle\"></span> {esc(name)}</span>"
        for c, name in enumerate(data.class_names))
    return f"<p class=\"note\">Boxes by category: {items}. Border green: kept frame; red: removed.</p>"


def _per_category(selection: Selection, data: Any) -> str:
    counts = data.category_counts(selection.kept)
    k = len(counts)
    image_share = np.array([c["images_kept"] / c["images"] if c["images"] else np.nan for c in counts])
    object_share = np.array([c["objects_kept"] / c["objects"] if c["objects"] else np.nan for c in counts])
    fig = new_figure(min(9.0, 2.5 + 0.6 * k), 3.0)
    ax = fig.subplots()
    xs = np.arange(k)
    ax.bar(xs - 0.2, image_share, width=0.4, color="#2e90fa", label="images with it")
    ax.bar(xs + 0.2, object_share, width=0.4, color="#f79009", label="objects")
    ax.axhline(selection.realised_keep, color="0.3", linestyle="--", linewidth=1, label="kept share of images")
    ax.set_xticks(xs, [c["category"] for c in counts], rotation=45 if k > 8 else 0, fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("kept fraction")
    ax.legend(fontsize=8, loc="lower right")
    rows = [(c["category"], c["images"], c["images_kept"], c["objects"], c["objects_kept"],
             "" if np.isnan(object_share[j]) else f"{object_share[j]:.3f}") for j, c in enumerate(counts)]
    return section("Kept share per category", figure_img(fig, "kept share per category"),
                   table(["category", "images with it", "kept", "objects", "objects kept", "objects kept fraction"],
                         rows))


def _groups(selection: Selection, data: Any, group_by: str | None) -> tuple[str | None, str | None]:
    """(section, note): the share removed per group (--group-by) or per scene (a `scene_id` field)."""
    groups, label = data.groups, group_by or "group"
    if groups is None:
        groups, label = data.image_field("scene_id"), "scene_id"
    if groups is None:
        return None, ("No groups: give --group-by FIELD (a COCO image field, or for yolo: a regular expression "
                      "over the file name) to see the share removed per group.")
    names, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    size = np.bincount(inverse, minlength=len(names))
    removed = np.bincount(inverse[~selection.mask], minlength=len(names))
    share = removed / size
    fig = new_figure(6.5, 2.8)
    ax = fig.subplots()
    ax.hist(share, bins=np.linspace(0, 1, 21), color="#f04438")
    ax.axvline(1 - selection.realised_keep, color="0.3", linestyle="--", linewidth=1, label="overall removed share")
    ax.set_xlabel(f"share of the {label}'s images removed")
    ax.set_ylabel(f"{label}s")
    ax.legend(fontsize=8)
    order = np.lexsort((names, -share))[:MAX_GROUPS_SHOWN]
    rows = [(names[g], int(size[g]), int(removed[g]), f"{share[g]:.3f}") for g in order]
    whole = int(((share == 0) | (share == 1)).sum())
    note = (f"<p class=\"note\">{len(names)} {esc(label)}s; {whole} kept or removed whole. The table lists the "
            f"{len(order)} with the largest removed share.</p>")
    return section(f"Share removed per {label}", figure_img(fig, f"share removed per {label}"), note,
                   table([label, "images", "removed", "removed share"], rows)), None


def _pairs(selection: Selection, data: Any, twin: np.ndarray, similarity: np.ndarray | None) -> str:
    mask = selection.mask
    twin = np.where(np.isnan(twin.astype(np.float64)), -1, twin.astype(np.float64)).astype(np.int64)
    removed = np.flatnonzero(~mask & (twin >= 0) & (twin < selection.n_total))
    heading = "Removed frames beside the kept frame each duplicates"
    if removed.size == 0:
        return section(heading, "<p class=\"note\">No removed frame names a kept twin in this selection.</p>")
    sim = similarity.astype(np.float64) if similarity is not None else np.full(selection.n_total, np.nan)
    ranked = removed[np.argsort(-np.nan_to_num(sim[removed], nan=-np.inf), kind="stable")]
    half = MAX_PAIRS // 2
    picks = list(ranked[:half]) + [i for i in ranked[::-1][:half] if i not in set(ranked[:half])][::-1]
    cells = []
    for i in picks:
        j = int(twin[i])
        caption = f"{_name(data, int(i))} → {_name(data, j)}" + ("" if np.isnan(sim[i]) else f" · cos {sim[i]:.3f}")
        cells.append("<div class=\"pair\"><div class=\"two\">" + frame_img(data, int(i), kept=False)
                     + frame_img(data, j, kept=True) + f"</div>{esc(caption)}</div>")
    note = (f"<p class=\"note\">{removed.size} removed frames name the kept frame they duplicate; shown: the "
            f"{min(half, len(ranked))} most similar and the {len(picks) - min(half, len(ranked))} least similar "
            "(nearest the cut). Left (red): removed; right (green): its kept twin.</p>")
    return section(heading, note, _legend(data), "<div class=\"grid\">" + "".join(cells) + "</div>")


def _spread(rows: np.ndarray, k: int) -> np.ndarray:
    """At most k of `rows`, evenly spaced (so frames come from across the set, not one scene)."""
    if len(rows) <= k:
        return rows
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(np.int64)]


def _galleries(selection: Selection, data: Any) -> str:
    mask = selection.mask
    scores = selection.scores
    parts = []
    for label, rows in (("Removed frames", np.flatnonzero(~mask)), ("Kept frames", np.flatnonzero(mask))):
        shown = _spread(rows, MAX_FRAMES)
        cells = "".join(
            "<div class=\"cell\">" + frame_img(data, int(i), kept=bool(mask[i]))
            + esc(_name(data, int(i)) + ("" if scores is None or np.isnan(scores[i]) else f" · {scores[i]:.3g}"))
            + "</div>" for i in shown)
        parts.append(f"<h3>{esc(label)} ({len(shown)} of {len(rows)}, spread over the set)</h3>"
                     f"<div class=\"grid\">{cells}</div>")
    return section("Frames and their boxes", _legend(data), *parts)


def render_detection_report(selection: Selection, data: Any, *, source: str, twin: np.ndarray | None,
                            similarity: np.ndarray | None, group_by: str | None = None) -> str:
    """The page for a selection made on detection `data` (already checked to have its image count)."""
    about = [
        ("data", data.name), ("method", selection.method), ("parameters", selection.params),
        ("seed", selection.seed),
        ("kept", f"{selection.n_kept} of {selection.n_total} images ({selection.realised_keep:.1%}; requested "
                 f"{selection.requested_keep:.1%})"),
        ("input", f"{data.input_size} x {data.input_size} px, letterboxed (selection made at "
                  + (f"{made_at} px)" if (made_at := selection.details.get("input_size")) else "an unrecorded size)")),
        ("adaprune version", selection.library_version), ("file", Path(source).name),
    ]
    sections = [section("Selection", meta_list(about)), _per_category(selection, data)]
    notes = []
    groups, note = _groups(selection, data, group_by)
    if groups:
        sections.append(groups)
    if note:
        notes.append(note)
    clusters = _per_cluster(selection.details)
    if clusters:
        sections.append(clusters)
    if twin is not None:
        sections.append(_pairs(selection, data, twin, similarity))
    else:
        notes.append(f"{selection.method} wrote no `twin` column: no removed frames beside their twins.")
    sections.append(_galleries(selection, data))
    if notes:
        sections.append(section("Not shown", "".join(f"<p class=\"note\">{esc(n)}</p>" for n in notes)))
    subtitle = (f"{esc(selection.method)} kept {selection.n_kept} of {selection.n_total} images "
                f"({selection.realised_keep:.1%}) of <b>{esc(data.name)}</b>")
    return page(f"adaprune selection: {selection.method}", subtitle, sections)
