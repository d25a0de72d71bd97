"""The report of a selection and its data: kept fraction per class and per cluster (AdaDeDup's
rates and loss gaps from `details.clusters`), removed samples beside the kept sample each duplicates
(the `twin`/`similarity` columns, where the method wrote them), and the highest- and lowest-scored
samples per class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adaprune.report._html import esc, figure_img, is_drawable, meta_list, new_figure, page, section, table, thumbnail
from adaprune.selection import Selection, check_matches
from adaprune.tables import read_table

MAX_PAIRS = 36
SAMPLED_PAIRS = 12  # removals drawn across the similarity range, nearest the cut included
PER_CLASS_EXTREMES = 6
MAX_CLASSES_SHOWN = 20


def _optional_column(columns: dict[str, np.ndarray | None], name: str) -> np.ndarray | None:
    col = columns.get(name)
    return None if col is None else np.asarray(col)


def _class_names(data: Any, k: int) -> list[str]:
    names = [str(n) for n in (getattr(data, "class_names", None) or ())]
    return names + [str(c) for c in range(len(names), k)]


def _per_class(selection: Selection, data: Any) -> str:
    y = np.asarray(data.y)
    k = int(y.max()) + 1
    names = _class_names(data, k)
    size = np.bincount(y, minlength=k)
    kept = np.bincount(y[selection.kept], minlength=k)
    frac = np.where(size > 0, kept / np.maximum(size, 1), np.nan)
    fig = new_figure(min(9.0, 2.5 + 0.45 * k), 3.0)
    ax = fig.subplots()
    ax.bar(np.arange(k), frac, color="#2e90fa")
    ax.axhline(selection.realised_keep, color="0.3", linestyle="--", linewidth=1, label="overall kept fraction")
    ax.set_xticks(np.arange(k), names if k <= 30 else [str(i) for i in range(k)], rotation=45 if k > 12 else 0,
                  fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("kept fraction")
    ax.legend(fontsize=8, loc="lower right")
    rows = [(names[c], int(size[c]), int(kept[c]), f"{frac[c]:.3f}") for c in range(k)]
    return section("Kept fraction per class", figure_img(fig, "kept fraction per class"),
                   table(["class", "samples", "kept", "kept fraction"], rows))


def _per_cluster(details: dict[str, Any]) -> str | None:
    clusters = details.get("clusters")
    if not isinstance(clusters, dict):
        return None
    if not isinstance(clusters.get("size"), list):  # a summary of scalars (SemDeDup): show it as it is
        return section("Clusters", meta_list(sorted(clusters.items())))
    size = np.asarray(clusters["size"], dtype=np.float64)
    final = np.asarray(clusters.get("final_rate", clusters.get("p_initial", np.zeros_like(size))), dtype=np.float64)
    initial = np.asarray(clusters.get("p_initial", final), dtype=np.float64)
    gap = np.asarray(clusters.get("d", np.zeros_like(size)), dtype=np.float64)
    fig = new_figure(10, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    lim = max(1e-3, float(np.abs(gap).max(initial=0)))
    sc = ax1.scatter(1 - initial, 1 - final, c=gap, cmap="coolwarm", vmin=-lim, vmax=lim,
                     s=12 + 90 * size / max(size.max(initial=0), 1.0), edgecolors="k", linewidths=0.3)
    ax1.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ax1.set_xlabel("kept fraction, density only (initial)")
    ax1.set_ylabel("kept fraction, final")
    ax1.set_title("per cluster (area: size; colour: loss gap)", fontsize=9)
    fig.colorbar(sc, ax=ax1, label="d_c = loss(pruned) − loss(kept)")
    order = np.argsort(gap)
    ax2.bar(np.arange(len(gap)), gap[order], color=np.where(gap[order] > 0, "#d92d20", "#2e90fa"))
    ax2.axhline(0, color="k", linewidth=0.8)
    ax2.set_xticks([])  # cluster ids in sorted order would read as a scale
    ax2.set_xlabel("clusters, sorted by loss gap")
    ax2.set_ylabel("d_c")
    ax2.set_title("loss gap: > 0 prune less, < 0 prune more", fontsize=9)
    change = (1 - final) - (1 - initial)
    top = np.argsort(-np.abs(change), kind="stable")[:12]
    rows = [(int(c), int(size[c]), f"{1 - initial[c]:.3f}", f"{1 - final[c]:.3f}", f"{change[c]:+.3f}",
             f"{gap[c]:+.4f}") for c in top]
    note = (f"<p class=\"note\">{len(size)} clusters. The table lists the {len(top)} clusters whose kept fraction "
            "moved most from the density-only start.</p>")
    return section("Kept fraction per cluster", figure_img(fig, "kept fraction per cluster"), note,
                   table(["cluster", "samples", "kept (initial)", "kept (final)", "change", "loss gap d_c"], rows))


def _name(selection: Selection, i: int) -> str:
    """A sample as the user knows it: its file name (path sources), its id, else its row."""
    if selection.ids is None:
        return f"#{i}"
    if selection.id_column == "path":
        return Path(str(selection.ids[i])).name
    return f"id {selection.ids[i]}"


def _pairs(selection: Selection, data: Any, twin: np.ndarray, similarity: np.ndarray | None) -> str:
    mask = selection.mask
    twin = np.where(np.isnan(twin.astype(np.float64)), -1, twin.astype(np.float64)).astype(np.int64)
    removed = np.flatnonzero(~mask & (twin >= 0) & (twin < selection.n_total))
    if removed.size == 0:
        return section("Removed samples and the kept sample each duplicates",
                       "<p class=\"note\">No removed sample names a kept twin in this selection.</p>")
    sim = similarity.astype(np.float64) if similarity is not None else np.full(selection.n_total, np.nan)
    by_similarity = removed[np.argsort(-np.nan_to_num(sim[removed], nan=-np.inf), kind="stable")]
    order = by_similarity[:MAX_PAIRS]
    # Beside the most similar: removals at evenly spaced ranks of the similarity, down to the least
    # similar removal (the one nearest the cut), so a typical removal is seen, not only the clearest.
    finite = by_similarity[np.isfinite(sim[by_similarity])]  # the first rows of by_similarity (NaN last)
    sampled = np.array([], dtype=np.int64)
    if finite.size > len(order):  # else the most similar already reach the least similar removal
        ranks = np.unique(np.linspace(0, finite.size - 1, min(SAMPLED_PAIRS, finite.size)).round().astype(np.int64))
        sampled = finite[ranks]
    note = (f"<p class=\"note\">{removed.size} removed samples name the kept sample they duplicate; the "
            f"{len(order)} most similar are shown (red: removed, green: the kept twin, the nearest KEPT sample, "
            "column <code>twin</code>, cosine <code>similarity</code>; captions name files where the source "
            "has them).")
    if selection.cause is not None:
        note += (" “Removed because of” names the earlier sample whose similarity removed it (column "
                 "<code>cause</code>, cosine <code>cause_similarity</code>: its score, at or above the threshold "
                 "in threshold mode). That sample may itself have been removed, so the twin's cosine can lie "
                 "below the threshold.")
    note += "</p>"
    parts = [note, "<div class=\"grid\">" + "".join(_pair_cell(selection, data, i, int(twin[i]), sim[i])
                                                    for i in order) + "</div>"]
    if sampled.size:
        cut = float(sim[finite[-1]])
        parts += [f"<h3>Removals across the similarity range</h3><p class=\"note\">{sampled.size} removals at evenly "
                  f"spaced ranks of their cosine to the kept twin, from the most similar ({sim[finite[0]]:.3f}) to "
                  f"the least similar removal ({cut:.3f}, the nearest the cut).</p>",
                  "<div class=\"grid sampled\">" + "".join(_pair_cell(selection, data, i, int(twin[i]), sim[i])
                                                          for i in sampled) + "</div>"]
    return section("Removed samples and the kept sample each duplicates", *parts)


def _pair_cell(selection: Selection, data: Any, i: int, j: int, sim: float) -> str:
    mask, cause, cause_sim = selection.mask, selection.cause, selection.cause_similarity
    label = f"{_name(selection, i)} → kept twin {_name(selection, j)}" + ("" if np.isnan(sim) else f" · cos {sim:.3f}")
    if cause is not None and cause_sim is not None and cause[i] >= 0:
        label += f"; removed because of {_name(selection, int(cause[i]))} (cos {cause_sim[i]:.3f}"
        label += ", itself removed)" if not mask[cause[i]] else ")"
    return (
        "<div class=\"pair\"><div class=\"two\">"
        + thumbnail(np.asarray(data.x[i]), css="removed", title=f"removed {_name(selection, i)} (row {i})")
        + thumbnail(np.asarray(data.x[j]), css="kept", title=f"kept {_name(selection, j)} (row {j})")
        + f"</div>{esc(label)}</div>"
    )


def score_cut(scores: np.ndarray, mask: np.ndarray, higher_is_keep: bool | None) -> float | None:
    """The score that separates kept from removed samples, when one does (a single global cut):
    the lowest removed score where lower is kept, the highest removed where higher is kept; None
    when kept and removed overlap (per-cluster rates, sampling) or the direction is unknown."""
    kept, removed = scores[mask], scores[~mask]
    if higher_is_keep is None or kept.size == 0 or removed.size == 0:
        return None
    if higher_is_keep:
        return float(removed.max()) if removed.max() <= kept.min() else None
    return float(removed.min()) if removed.min() >= kept.max() else None


def _score_histogram(selection: Selection) -> str | None:
    """Kept and removed samples' scores (for SemDeDup/AdaDeDup M, the cosine to the most similar
    earlier sample) with the cut marked."""
    scores = np.asarray(selection.scores, dtype=np.float64)
    special = np.isin(scores, list(SPECIAL_SCORES.get(selection.method, {})))
    shown = np.isfinite(scores) & ~special
    if not shown.any():
        return None
    mask = selection.mask
    dedup = selection.method in SPECIAL_SCORES
    what = "M: cosine to the most similar earlier sample" if dedup else "score"
    cut = score_cut(scores[shown], mask[shown], selection.higher_is_keep)
    fig = new_figure(7.5, 3.0)
    ax = fig.subplots()
    bins = np.histogram_bin_edges(scores[shown], bins=40)
    ax.hist([scores[shown & mask], scores[shown & ~mask]], bins=bins, stacked=True, color=["#12b76a", "#d92d20"],
            label=["kept", "removed"])
    if cut is not None:
        ax.axvline(cut, color="k", linestyle="--", linewidth=1, label=f"cut {cut:.4g}")
    ax.set_xlabel(what)
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    text = (f"The cut at {cut:.4g} separates every kept sample from every removed one." if cut is not None else
            "Kept and removed scores overlap: no single cut (per-cluster rates, groups or sampling decide).")
    if special.any():
        text += f" Not drawn: {int(special.sum())} samples at a special value (see below)."
    return section(f"Histogram of {'M' if dedup else 'scores'} with the cut",
                   figure_img(fig, f"histogram of {what} with the cut"), f"<p class=\"note\">{esc(text)}</p>")


# Score values with a meaning of their own, per method, explained wherever the report shows them.
SPECIAL_SCORES: dict[str, dict[float, str]] = {
    "semdedup": {-1.0: "-1: no earlier sample was compared with it (the first of its cluster in keep "
                       "priority), so it duplicates nothing"},
    "adadedup": {-1.0: "-1: no earlier sample was compared with it (the first of its cluster in keep "
                       "priority), so it duplicates nothing"},
}


def special_score_notes(selection: Selection) -> list[str]:
    """What each special value among the shown scores means (-1 for SemDeDup's M), and NaN."""
    scores = np.asarray(selection.scores, dtype=np.float64)
    notes = [text for value, text in SPECIAL_SCORES.get(selection.method, {}).items() if np.any(scores == value)]
    epochs = selection.params.get("epochs") if selection.method == "forgetting" else None
    if isinstance(epochs, int) and np.any(scores >= epochs):
        # forgetting_events gives a sample never classified correctly T, above any possible count.
        notes.append(f"{epochs} or more (the epochs observed): never classified correctly, counted above any "
                     "number of forgetting events")
    if np.isnan(scores).any():
        notes.append(f"NaN: no score ({int(np.isnan(scores).sum())} samples, not shown; pruned first)")
    return notes


def _extremes(selection: Selection, data: Any) -> str:
    scores = np.asarray(selection.scores, dtype=np.float64)
    y = np.asarray(data.y)
    mask = selection.mask
    names = _class_names(data, int(y.max()) + 1)
    direction = {True: "higher = keep", False: "lower = keep", None: "direction not recorded"}[
        selection.higher_is_keep]
    blocks = []
    classes = [c for c in range(int(y.max()) + 1) if np.any(y == c)][:MAX_CLASSES_SHOWN]
    for c in classes:
        members = np.flatnonzero((y == c) & ~np.isnan(scores))
        if members.size == 0:
            continue
        ranked = members[np.argsort(-scores[members], kind="stable")]
        rows = []
        for label, picks in (("highest", ranked[:PER_CLASS_EXTREMES]), ("lowest", ranked[::-1][:PER_CLASS_EXTREMES])):
            cells = "".join(
                "<div class=\"cell\">"
                + thumbnail(np.asarray(data.x[i]), css="kept" if mask[i] else "removed",
                            title=f"#{i} score {scores[i]:.4g} ({'kept' if mask[i] else 'removed'})")
                + f"{scores[i]:.3g}</div>"
                for i in picks
            )
            rows.append(f"<div class=\"row\"><span class=\"label\">{esc(names[c])}: {label}</span>{cells}</div>")
        blocks.append("".join(rows))
    special = special_score_notes(selection)
    note = (f"<p class=\"note\">Score: {esc(direction)}. Border green: kept; red: removed. "
            + (f"First {MAX_CLASSES_SHOWN} classes shown. " if len(classes) == MAX_CLASSES_SHOWN else "")
            + ("Special values: " + "; ".join(esc(t) for t in special) + "." if special else "") + "</p>")
    return section("Highest- and lowest-scored samples per class", note, *blocks)


def render_selection_report(selection_path: str | Path, data: Any | None = None) -> str:
    """`data` is the Dataset the selection was made on (None: no per-class numbers, no pictures)."""
    selection = Selection.load(selection_path)
    columns, _ = read_table(selection_path, what="selection")
    twin, similarity = _optional_column(columns, "twin"), _optional_column(columns, "similarity")
    if data is not None:
        check_matches(selection, data, what=f"selection {str(selection_path)!r}")
    about = [
        ("method", selection.method), ("parameters", selection.params), ("seed", selection.seed),
        ("kept", f"{selection.n_kept} of {selection.n_total} ({selection.realised_keep:.1%}; requested "
                 f"{selection.requested_keep:.1%})"),
        ("adaprune version", selection.library_version), ("file", Path(selection_path).name),
    ]
    if data is not None:
        about.insert(0, ("data", getattr(data, "name", "")))
    sections = [section("Selection", meta_list(about))]
    notes = []
    if data is not None:
        sections.append(_per_class(selection, data))
    else:
        notes.append("No data given (--data): no per-class numbers and no pictures.")
    clusters = _per_cluster(selection.details)
    if clusters:
        sections.append(clusters)
    histogram = _score_histogram(selection) if selection.scores is not None else None
    if histogram:
        sections.append(histogram)
    drawable = data is not None and is_drawable(tuple(np.shape(data.x)[1:]))
    if data is not None and not drawable:
        notes.append(f"Samples of shape {tuple(np.shape(data.x)[1:])} are not images or signals: no gallery.")
    if drawable and twin is not None:
        sections.append(_pairs(selection, data, twin, similarity))
    elif drawable:
        notes.append(f"{selection.method} wrote no `twin` column: no gallery of duplicates.")
    if drawable and selection.scores is not None and not np.isnan(selection.scores).all():
        sections.append(_extremes(selection, data))
    elif drawable:
        notes.append(f"{selection.method} wrote no scores: no highest/lowest gallery.")
    if notes:
        sections.append(section("Not shown", "".join(f"<p class=\"note\">{esc(n)}</p>" for n in notes)))
    subtitle = (f"{esc(selection.method)} kept {selection.n_kept} of {selection.n_total} samples "
                f"({selection.realised_keep:.1%})" + (f" of <b>{esc(data.name)}</b>" if data is not None else ""))
    return page(f"adaprune selection: {selection.method}", subtitle, sections)
