"""Start-up: importing the package and the light CLI commands never import torch (checked in a fresh
interpreter), and the method index that `adaprune methods` reads matches the registered classes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from adaprune import registry


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_importing_the_package_and_selection_imports_no_torch():
    res = run_python("""
        import sys
        import adaprune
        assert adaprune.__version__
        assert "torch" not in sys.modules, "import adaprune imported torch"
        import adaprune.selection, adaprune.scores, adaprune.registry, adaprune.errors
        assert "torch" not in sys.modules, "import adaprune.selection imported torch"
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_help_version_methods_and_a_bad_input_import_no_torch():
    # One interpreter runs every command in turn, checking sys.modules after each. A missing input
    # is reported before any method module (and torch) is imported.
    res = run_python("""
        import sys
        from adaprune.cli.main import main
        bad_input = ["prune", "npz:nope.npz", "--method", "random", "--prune", "0.3", "--out", "o.csv"]
        light = (["--help"], ["--version"], ["methods"], ["methods", "-v"], ["report", "--help"], bad_input)
        for argv in light:
            code = main(argv)
            assert code in (0, 2), (argv, code)
            assert "torch" not in sys.modules, f"adaprune {' '.join(argv)} imported torch"
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr
    assert "adaprune, version" in res.stdout and "adapruner" in res.stdout


def test_package_attributes_are_loaded_on_first_use():
    import adaprune.api
    import adaprune.selection

    assert adaprune.prune is adaprune.api.prune and adaprune.Selection is adaprune.selection.Selection
    assert {"prune", "Selection", "list_methods"} <= set(dir(adaprune))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        adaprune.nope  # noqa: B018


def _as_text(infos: list[registry.MethodInfo]) -> list[tuple]:
    return [(i.name, i.summary, i.kind, i.direction, {k: repr(v) for k, v in i.parameters.items()}) for i in infos]


def test_method_index_matches_the_registered_classes():
    hint = "the method index is stale: run `python -m adaprune.registry --write-index` and commit it"
    indexed = registry._read_index()
    assert indexed is not None, hint
    assert _as_text(indexed) == _as_text(registry.list_registered_methods()), hint
    assert registry._INDEX_PATH.read_text(encoding="utf-8") == registry.render_index(), hint
    # Defaults come back as values, not text.
    adapruner = next(i for i in indexed if i.name == "adapruner")
    assert adapruner.parameters["epochs"] == 20 and adapruner.parameters["binarize"] == "budget"


def test_a_stale_index_falls_back_to_the_classes(tmp_path, monkeypatch):
    stale = tmp_path / "_index.py"
    stale.write_text(registry.render_index().replace("FINGERPRINT = '", "FINGERPRINT = 'stale"))
    monkeypatch.setattr(registry, "_INDEX_PATH", stale)
    assert registry._read_index() is None
    assert _as_text(registry.list_methods()) == _as_text(registry.list_registered_methods())
    stale.write_text("METHODS = [")  # unreadable: same fallback
    assert registry._read_index() is None
