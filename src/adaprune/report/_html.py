"""The page around a report, and the pieces every report inlines: figures and sample thumbnails as
data: URIs or inline SVG, so the file opens anywhere with no network."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 0;
       background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.sub { color: #5b6475; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 6px 18px 14px;
          margin-top: 16px; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e6e8ee; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f1f3f6; }
td.worse { color: #b42318; } td.better { color: #067647; }
img.figure { max-width: 100%; height: auto; display: block; }
.note { color: #5b6475; font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.pair, .cell { display: flex; flex-direction: column; align-items: center; font-size: 11px; color: #5b6475; }
.pair .two { display: flex; gap: 4px; }
.thumb { border: 3px solid transparent; border-radius: 3px; background: #fff; image-rendering: pixelated; }
.kept { border-color: #12b76a; } .removed { border-color: #f04438; }
.row { display: flex; align-items: center; gap: 8px; margin: 4px 0; }
.row .label { width: 130px; font-size: 12px; text-align: right; color: #344054; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.meta dt { color: #5b6475; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12px; }
"""

# Records, once every image has loaded or failed, how many decoded (naturalWidth > 0): a reader sees a
# warning, and a test reads the numbers from the DOM.
_IMAGE_CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var decoded = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var root = document.documentElement;
  root.setAttribute("data-images-total", String(imgs.length));
  root.setAttribute("data-images-decoded", String(decoded));
  if (decoded < imgs.length) {
    var p = document.createElement("p");
    p.className = "note";
    p.textContent = (imgs.length - decoded) + " of " + imgs.length + " images failed to decode.";
    document.querySelector("main").prepend(p);
  }
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{esc(title)}</h1>\n<p class=\"sub\">{subtitle}</p>\n" + "\n".join(sections)
        + f"\n</main>\n<script>{_IMAGE_CHECK}</script>\n</body>\n</html>\n"
    )


def section(heading: str, *parts: str) -> str:
    return f"<section>\n<h2>{esc(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], classes: Iterable[Sequence[str]] | None = None) -> str:
    """Cells are escaped; `classes` (same shape as rows) marks cells, e.g. "worse"."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    class_rows = iter(classes) if classes is not None else None
    for row in rows:
        marks = next(class_rows) if class_rows is not None else [""] * len(row)
        cells = "".join(f"<td class=\"{m}\">{esc(c)}</td>" if m else f"<td>{esc(c)}</td>"
                        for c, m in zip(row, marks, strict=True))
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def meta_list(items: Iterable[tuple[str, Any]]) -> str:
    return "<dl class=\"meta\">" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def figure_img(fig: Any, alt: str) -> str:
    """A matplotlib Figure (made without pyplot) as an inline PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img class=\"figure\" alt=\"{esc(alt)}\" src=\"data:image/png;base64,{data}\">"


def new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def is_drawable(sample_shape: tuple[int, ...]) -> bool:
    """Images (C, H, W) with 1 or 3 channels, or short 1-D signals (C, L) drawn as lines."""
    if len(sample_shape) == 3:
        return sample_shape[0] in (1, 3) and min(sample_shape[1:]) >= 2
    return len(sample_shape) == 2 and sample_shape[0] <= 4 and sample_shape[1] >= 2


def thumbnail(sample: np.ndarray, *, css: str, title: str, size: int = 72) -> str:
    """One sample as a small picture: an image as a PNG data URI, a signal as an inline SVG line."""
    x = np.asarray(sample, dtype=np.float64)
    x = np.nan_to_num(x)
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if x.ndim == 3:
        from PIL import Image

        pixels = (255 * scaled).round().astype(np.uint8)
        img = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1))
        scale = max(1, size // max(img.size))
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return (f"<img class=\"thumb {css}\" title=\"{esc(title)}\" alt=\"{esc(title)}\" "
                f"src=\"data:image/png;base64,{data}\">")
    colours = ("#2e5aac", "#d9480f", "#2b8a3e", "#862e9c")
    width, height = 2 * size, size
    lines = []
    for c, channel in enumerate(scaled):
        xs = np.linspace(2, width - 2, len(channel))
        ys = height - 2 - channel * (height - 4)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
        lines.append(f"<polyline fill=\"none\" stroke=\"{colours[c % 4]}\" stroke-width=\"1.5\" points=\"{points}\"/>")
    return (f"<svg class=\"thumb {css}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" "
            f"role=\"img\"><title>{esc(title)}</title>{''.join(lines)}</svg>")
