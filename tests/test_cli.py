from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from adaprune.cli.main import main
from tests.conftest import make_blobs

FAST_ADA = ["--epochs", "3", "--param", "warmup_epochs=1", "--param", "max_extra_epochs=1"]


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_writes_one_row_per_sample_with_exact_budget_and_is_byte_identical(blobs_npz, tmp_path, capsys):
    out1, out2 = tmp_path / "sel.csv", tmp_path / "sel2.csv"
    for out in (out1, out2):
        code, _, err = run_cli(["prune", f"npz:{blobs_npz}", "--method", "adapruner", "--prune", "0.3",
                                "--out", str(out), "--quiet", *FAST_ADA], capsys)
        assert code == 0, err
    rows = out1.read_text().splitlines()
    assert rows[0] == "index,kept,score" and len(rows) == 241
    kept = [int(r.split(",")[1]) for r in rows[1:]]
    assert sum(kept) == round(0.7 * 240)
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(240))
    assert out1.read_bytes() == out2.read_bytes()
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["method"] == "adapruner" and meta["seed"] == 0 and meta["params"]["epochs"] == 3


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_prune_other_formats(blobs_npz, tmp_path, capsys, suffix):
    out = tmp_path / f"sel{suffix}"
    code, _, err = run_cli(["prune", f"npz:{blobs_npz}", "--method", "random", "--keep", "0.25",
                            "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    from adaprune.selection import Selection

    assert Selection.load(out).n_kept == 60


def _bad_npz(tmp_path):
    x, y = make_blobs(n=20)
    cases = {
        "mismatch": {"x": x, "y": y[:-1]},
        "labels": {"x": x, "y": y - 1},
        "nan": {"x": np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), "y": y},
        "empty": {"x": x[:0], "y": y[:0]},
    }
    paths = {}
    for name, arrays in cases.items():
        paths[name] = tmp_path / f"{name}.npz"
        np.savez(paths[name], **arrays)
    paths["unreadable"] = tmp_path / "unreadable.npz"
    paths["unreadable"].write_text("garbage")
    paths["missing"] = tmp_path / "missing.npz"
    return paths


def test_each_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, capsys):
    for name, path in _bad_npz(tmp_path).items():
        out = tmp_path / f"out_{name}.csv"
        code, stdout, err = run_cli(["prune", f"npz:{path}", "--method", "random", "--prune", "0.3",
                                     "--out", str(out)], capsys)
        assert code == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("adaprune: error: "), (name, err)
        assert not out.exists() and not (tmp_path / f"out_{name}.csv.meta.json").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--method", "random", "--prune", "1.5"], "prune must be a fraction in [0, 1), got 1.5"),
        (["--method", "nosuch", "--prune", "0.5"], "unknown method 'nosuch'; expected one of"),
        (["--method", "random"], "give --prune F or --keep F"),
        (["--method", "random", "--prune", "0.2", "--keep", "0.8"], "exactly one of keep or prune"),
        (["--method", "adapruner", "--prune", "0.2", "--param", "bogus=1"], "has no parameter 'bogus'"),
        (["--method", "adapruner", "--prune", "0.2", "--param", "epochs=many"],
         "epochs must be an int >= 1, got 'many'"),
        (["--method", "random", "--prune", "0.2", "--model", "vgg"], "--model"),
    ],
)
def test_bad_options(blobs_npz, tmp_path, capsys, args, needle):
    out = tmp_path / "o.csv"
    code, _, err = run_cli(["prune", f"npz:{blobs_npz}", "--out", str(out), *args], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_output_equal_to_input_is_refused_and_input_untouched(blobs_npz, capsys):
    before = blobs_npz.read_bytes()
    code, _, err = run_cli(["prune", f"npz:{blobs_npz}", "--method", "random", "--prune", "0.5",
                            "--out", str(blobs_npz)], capsys)
    assert code == 2 and "is an input" in err
    assert blobs_npz.read_bytes() == before


def test_bad_extension_fails_before_any_work(blobs_npz, tmp_path, capsys):
    code, _, err = run_cli(["prune", f"npz:{blobs_npz}", "--method", "random", "--prune", "0.5",
                            "--out", str(tmp_path / "sel.txt")], capsys)
    assert code == 2 and "expected one of .csv, .parquet, .json" in err
    assert list(tmp_path.iterdir()) == [blobs_npz]


def test_methods_lists_one_line_each(capsys):
    code, out, _ = run_cli(["methods"], capsys)
    lines = out.strip().splitlines()
    assert code == 0
    names = [line.split()[0] for line in lines]
    assert "adapruner" in names and "random" in names and len(names) == len(set(names))


def test_evaluate_reports_mean_and_std(blobs_npz, tmp_path, capsys):
    sel = tmp_path / "sel.csv"
    assert run_cli(["prune", f"npz:{blobs_npz}", "--method", "random", "--prune", "0.5", "--out", str(sel),
                    "--quiet"], capsys)[0] == 0
    code, out, err = run_cli(["evaluate", f"npz:{blobs_npz}", "--selection", str(sel), "--seeds", "2",
                              "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err
    header, subset, full, protocol = out.strip().splitlines()
    assert header.split() == ["set", "samples", "accuracy_mean", "accuracy_std", "per_seed"]
    assert subset.split()[:2] == ["subset", "120"] and full.split()[:2] == ["full", "240"]
    assert len(subset.split()[4].split(",")) == 2
    assert protocol == "# same epochs: 3 epochs for every set"
    assert 0.0 <= float(subset.split()[2]) <= 1.0


def test_evaluate_without_test_split_is_a_clear_error(tmp_path, capsys):
    x, y = make_blobs(n=30)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    sel = tmp_path / "s.csv"
    assert run_cli(["prune", f"npz:{tmp_path / 'd.npz'}", "--method", "random", "--prune", "0.5", "--out",
                    str(sel), "--quiet"], capsys)[0] == 0
    code, _, err = run_cli(["evaluate", f"npz:{tmp_path / 'd.npz'}", "--selection", str(sel), "--quiet"], capsys)
    assert code == 2 and "has no test split" in err


def test_evaluate_rejects_selection_from_another_dataset(blobs_npz, tmp_path, capsys):
    x, y = make_blobs(n=30)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    sel = tmp_path / "s.csv"
    run_cli(["prune", f"npz:{tmp_path / 'd.npz'}", "--method", "random", "--prune", "0.5", "--out", str(sel),
             "--quiet"], capsys)
    code, _, err = run_cli(["evaluate", f"npz:{blobs_npz}", "--selection", str(sel), "--quiet"], capsys)
    assert code == 2 and "covers 30 samples" in err


def test_benchmark_writes_json_markdown_and_plot(blobs_npz, tmp_path, capsys):
    out = tmp_path / "bench"
    code, stdout, err = run_cli(["benchmark", f"npz:{blobs_npz}", "--methods", "random,adapruner",
                                 "--prune", "0.2,0.5", "--seeds", "2", "--epochs", "2", "--out", str(out),
                                 "--quiet"], capsys)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["runs"]) == 2 * 2 * 2 and len(doc["full_values"]) == 2
    assert {r["n_kept"] for r in doc["runs"]} == {192, 120}
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "results.md").read_text()
    assert "| full data (0% pruned) |" in table and "| adapruner |" in table and "20% pruned" in table
    assert "| random |" in stdout


def test_console_script_error_path_and_debug_traceback(tmp_path):
    exe = [sys.executable, "-m", "adaprune.cli.main"]
    res = subprocess.run([*exe, "prune", "npz:nope.npz", "--method", "random", "--prune", "0.3", "--out",
                          str(tmp_path / "o.csv")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip() == "adaprune: error: npz file 'nope.npz' does not exist"
    res = subprocess.run([*exe, "prune", "npz:nope.npz", "--method", "random", "--prune", "0.3", "--out",
                          str(tmp_path / "o.csv")], capture_output=True, text=True,
                         env={**__import__("os").environ, "ADAPRUNE_DEBUG": "1"})
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_every_parameter_of_every_method_has_a_description(capsys):
    from adaprune.registry import list_methods

    for info in list_methods():
        missing = sorted(set(info.parameters) - set(info.parameter_help))
        assert not missing, f"{info.name}: no description for {missing}"
        assert all(text.strip() and "\n" not in text for text in info.parameter_help.values())
    assert main(["methods", "-v"]) == 0
    out = capsys.readouterr().out
    assert "beta=None  [a float in [0, 1) or None] fraction of all samples dropped from the hard end first" in out


def test_every_command_takes_quiet_and_data_commands_say_what_data_may_be(capsys):
    from adaprune.cli.main import cli
    from adaprune.data.sources import SPEC_HELP

    for name, cmd in cli.commands.items():
        assert "quiet" in {p.name for p in cmd.params}, name
    assert main(["prune", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"DATA is one of: {SPEC_HELP}" in out


def test_select_is_quiet_on_request(blobs_npz, tmp_path, capsys):
    assert main(["score", f"npz:{blobs_npz}", "--method", "random", "--out", str(tmp_path / "s.csv"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["select", str(tmp_path / "s.csv"), "--keep", "0.5", "--out", str(tmp_path / "k.csv"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_misspelt_method_gets_a_suggestion(blobs_npz, tmp_path, capsys):
    code = main(["prune", f"npz:{blobs_npz}", "--method", "adaprunner", "--keep", "0.5", "--out",
                 str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'adapruner'?" in err and len(err.strip().splitlines()) == 1
