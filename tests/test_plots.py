"""The benchmark plot: distinct styles, legend outside, a dot plot for one fraction, no pyplot state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaprune.evaluate.plots import accuracy_figure, method_styles, save_png

METHODS = [f"method{i}" for i in range(16)]


def fake_cell(method: str, prune: float) -> tuple[float, float]:
    i = METHODS.index(method) if method in METHODS else 0
    return 0.9 - 0.3 * prune - 0.002 * i, 0.01


def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


@pytest.mark.parametrize("n", [2, 10, 16, 20, 25])
def test_every_method_has_its_own_colour_and_marker(n):
    styles = method_styles([f"m{i}" for i in range(n)])
    colours = [c for c, _ in styles.values()]
    assert len(set(colours)) == n
    assert len(set(styles.values())) == n


def test_sixteen_methods_legend_outside_the_axes(tmp_path, monkeypatch):
    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError("the library must not switch matplotlib's backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    fig = drawn(accuracy_figure(dataset="d", methods=METHODS, prunes=[0.1, 0.3, 0.5], cell=fake_cell,
                                full_values=[0.9, 0.91], n_seeds=2))
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert len(legend.get_texts()) == 17  # 16 methods and full data
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # beside the axes, not over the curves
    data_lines = [c.lines[0] for c in ax.containers if c.get_label() in METHODS]
    assert len({(str(line.get_color()), line.get_marker()) for line in data_lines}) == 16
    save_png(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_one_fraction_is_a_labelled_dot_plot():
    fig = drawn(accuracy_figure(dataset="mnist1d", methods=["adapruner", "random"], prunes=[0.3], cell=fake_cell,
                                full_values=[0.9], n_seeds=3))
    ax = fig.axes[0]
    rows_by_label = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert rows_by_label["adapruner"] > rows_by_label["random"]  # one labelled row each, first on top
    points = {tuple(np.round(c.lines[0].get_xydata()[0], 6)) for c in ax.containers}
    assert len(points) == 2  # not drawn on top of each other
    labels = [t.get_text() for t in ax.texts]
    assert any(text.startswith("full data") for text in labels) and sum("±" in t for t in labels) == 3
    assert "30% pruned" in ax.get_title()


# Files that still switch the backend, owned by other work in progress; each must be fixed and removed here.
PENDING: set[str] = set()


def test_no_library_module_switches_the_backend_or_uses_pyplot():
    root = Path(__file__).resolve().parents[1] / "src" / "adaprune"
    needles = ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot")
    offenders = {str(p.relative_to(root)) for p in root.rglob("*.py") if any(n in p.read_text() for n in needles)}
    assert offenders <= PENDING, sorted(offenders - PENDING)
    assert offenders == PENDING, f"fixed: remove {sorted(PENDING - offenders)} from PENDING"
