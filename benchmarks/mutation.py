"""Mutation testing of the core: mutmut over a module list with its tests, survival per module.

    python benchmarks/mutation.py run --name core --modules src/adaprune/selection.py src/adaprune/scores.py \
        --tests tests/test_selection.py tests/test_scores.py --time-limit 1500
    python benchmarks/mutation.py report --before core=benchmarks/results/mutation/before_core.txt \
        --after core=benchmarks/results/mutation/after_core.txt

`run` copies the source tree (default: this repository) to a temporary folder, writes the [tool.mutmut]
section there, runs `mutmut run --max-children 2` under a wall-clock limit (a run cut by it keeps the
verdicts reached), and saves `mutmut results --all true` with each mutant's kind next to its status as
benchmarks/results/mutation/<when>_<name>.txt. `--only-unkilled LISTING` reruns only the mutants a saved
listing did not kill (tests are only ever added between the two runs, so a killed mutant stays killed),
plus `--also` name patterns (functions whose source changed, whose mutant numbers moved).

The kind: "message" when the mutant differs from the original only in the arguments of a `raise`, of a
log call, or in a `what=` label (the text a user reads, not what the code does); "behaviour" otherwise.
`report` writes per-module counts (killed / survived / no tests / timeout / not run) and the survival
rate = survived / (killed + survived), overall and over behaviour mutants only, as benchmarks/results/
mutation.{json,md}. mutmut is not a dependency: pass `--mutmut` or run from a venv that has it."""

from __future__ import annotations

import argparse
import ast
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LISTINGS = RESULTS / "mutation"
STATUSES = {"killed": "killed", "survived": "survived", "no tests": "no tests", "timeout": "timeout",
            "not checked": "not run", "suspicious": "timeout", "segfault": "killed", "skipped": "not run"}
NAME = re.compile(r"^(?P<module>[\w.]+?)\.(?P<func>x_\w+|xǁ\w+ǁ\w+)__mutmut_(?P<num>\d+)$")


# ---------------------------------------------------------------- classification
LOG_CALLS = {"debug", "info", "warning", "error", "exception"}


def _normalised(node: ast.AST) -> str:
    """The function's AST with its name, the arguments of every raise and of every log call, and
    `what=` labels blanked. String constants elsewhere (a comparison with "budget", a dict key) stay:
    changing them changes behaviour."""
    tree = ast.parse(ast.unparse(node))
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef):
            n.name = "f"
        elif isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call):
            n.exc.args, n.exc.keywords = [], []
        elif isinstance(n, ast.Call):
            if isinstance(n.func, ast.Attribute) and n.func.attr in LOG_CALLS:
                n.args, n.keywords = [], []
            n.keywords = [k for k in n.keywords if k.arg != "what"]
    return ast.dump(tree)


def mutant_kinds(mutants_dir: Path, names: list[str]) -> dict[str, str]:
    """"message" or "behaviour" per mutant name, from the mutated sources mutmut wrote."""
    functions: dict[Path, dict[str, ast.FunctionDef]] = {}
    kinds = {}
    for name in names:
        m = NAME.match(name)
        if m is None:
            continue
        path = mutants_dir / "src" / (m["module"].replace(".", "/") + ".py")
        if path not in functions:
            if not path.is_file():
                continue
            functions[path] = {
                f.name: f for f in ast.walk(ast.parse(path.read_text())) if isinstance(f, ast.FunctionDef)
            }
        defs = functions[path]
        orig, mutant = defs.get(f"{m['func']}__mutmut_orig"), defs.get(f"{m['func']}__mutmut_{m['num']}")
        if orig is not None and mutant is not None:
            kinds[name] = "message" if _normalised(orig) == _normalised(mutant) else "behaviour"
    return kinds


# ---------------------------------------------------------------- listings
def parse_listing(text: str) -> dict[str, tuple[str, str]]:
    """name -> (status, kind) from `mutmut results --all true` (kind "" where not classified)."""
    out = {}
    for line in text.splitlines():
        name, sep, rest = line.strip().rpartition(": ")
        if not sep or not NAME.match(name):
            continue
        status, _, kind = rest.partition(" [")
        out[name] = (STATUSES.get(status.strip(), status.strip()), kind.rstrip("]"))
    return out


def write_listing(path: Path, rows: dict[str, tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    inverse = {v: k for k, v in STATUSES.items() if k in ("killed", "survived", "no tests", "timeout", "not checked")}
    text = "".join(f"    {n}: {inverse.get(s, s)}" + (f" [{k}]" if k else "") + "\n" for n, (s, k) in rows.items())
    path.write_text(text)


def merge_partial(before: dict[str, tuple[str, str]], rows: dict[str, tuple[str, str]],
                  asked: list[str]) -> dict[str, tuple[str, str]]:
    """A partial rerun's listing: the mutants it was not asked to run keep the earlier verdict (mutmut
    lists them as not checked)."""
    patterns = [re.compile(fnmatch.translate(p)) for p in asked]

    def was_asked(name: str) -> bool:
        return any(p.match(name) for p in patterns)

    return {n: (v if was_asked(n) or n not in before else before[n]) for n, v in rows.items()}


def classify_listing(listing: Path, mutants_root: Path, out: Path) -> None:
    """A saved listing (such as one made by hand) with kinds added from the mutants/ folder it came from."""
    rows = parse_listing(listing.read_text())
    kinds = mutant_kinds(mutants_root / "mutants", [n for n, (s, _) in rows.items() if s != "killed"])
    write_listing(out, {n: (s, kinds.get(n, k)) for n, (s, k) in rows.items()})


# ---------------------------------------------------------------- a run
def _mutmut_config(modules: list[str], tests: list[str]) -> str:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    return (f"\n[tool.mutmut]\npaths_to_mutate = {toml_list(modules)}\ntests_dir = {toml_list(tests)}\n"
            'also_copy = ["tests", "src/adaprune"]\n')


def _strip_mutmut_section(pyproject: str) -> str:
    return re.sub(r"\n\[tool\.mutmut\]\n(?:(?!\n\[).)*", "\n", pyproject, flags=re.S)


def run_mutmut(args: argparse.Namespace) -> Path:
    source = Path(args.source).resolve()
    mutmut = args.mutmut or shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    names: list[str] = []
    if args.only_unkilled:
        before = parse_listing(Path(args.only_unkilled).read_text())
        changed = [re.compile(fnmatch.translate(p)) for p in args.also]
        names = [n for n, (s, _) in before.items() if s != "killed" and not any(c.match(n) for c in changed)]
        names += args.also
    with tempfile.TemporaryDirectory(prefix="adaprune_mutation_") as tmp:
        work = Path(tmp) / "tree"
        work.mkdir()
        for item in ("src", "tests", "pyproject.toml"):
            src = source / item
            if src.is_dir():
                shutil.copytree(src, work / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, work / item)
        pyproject = work / "pyproject.toml"
        pyproject.write_text(_strip_mutmut_section(pyproject.read_text()) + _mutmut_config(args.modules, args.tests))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = ["nice", "-n", str(args.nice), mutmut, "run", "--max-children", str(args.max_children), *names]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=args.time_limit)
            cut = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            cut = True
        wall = time.monotonic() - start
        listing = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True,
                                 text=True, timeout=600).stdout
        rows = parse_listing(listing)
        if names:
            rows = merge_partial(before, rows, names)
        kinds = mutant_kinds(work / "mutants", [n for n, (s, _) in rows.items() if s != "killed"])
        rows = {n: (s, kinds.get(n, k)) for n, (s, k) in rows.items()}
    out = LISTINGS / f"{args.when}_{args.name}.txt"
    write_listing(out, rows)
    (LISTINGS / f"{args.when}_{args.name}.run.txt").write_text(
        f"modules: {' '.join(args.modules)}\ntests: {' '.join(args.tests)}\nmutants asked: "
        f"{len(names) or 'all'}\nwall_s: {wall:.0f}\ntime_limit_s: {args.time_limit}\ncut_by_limit: {cut}\n")
    print(f"{out}: {Counter(s for s, _ in rows.values())} in {wall:.0f} s{' (cut by the limit)' if cut else ''}")
    return out


# ---------------------------------------------------------------- the report
def module_counts(rows: dict[str, tuple[str, str]]) -> dict[str, dict]:
    per: dict[str, Counter] = {}
    for name, (status, kind) in rows.items():
        module = NAME.match(name)["module"]
        c = per.setdefault(module, Counter())
        c[status] += 1
        if status == "survived":
            c[f"survived_{kind or 'unclassified'}"] += 1
    out = {}
    for module, c in sorted(per.items()):
        tested = c["killed"] + c["survived"]
        behaviour = tested - c["survived_message"]
        out[module] = {
            "killed": c["killed"], "survived": c["survived"], "no_tests": c["no tests"],
            "timeout": c["timeout"], "not_run": c["not run"],
            "survived_message": c["survived_message"], "survived_behaviour": c["survived_behaviour"],
            "survival": round(c["survived"] / tested, 4) if tested else None,
            "survival_behaviour": round((c["survived"] - c["survived_message"]) / behaviour, 4) if behaviour else None,
        }
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report(args: argparse.Namespace) -> None:
    def pairs(items: list[str]) -> dict[str, Path]:
        return {k: Path(v) for k, v in (i.split("=", 1) for i in items)}

    before, after = pairs(args.before), pairs(args.after)
    groups = {}
    for group in dict.fromkeys([*before, *after]):
        groups[group] = {
            when: module_counts(parse_listing(paths[group].read_text())) if group in paths else None
            for when, paths in (("before", before), ("after", after))
        }
        for when, paths in (("before", before), ("after", after)):
            run_info = paths.get(group, Path("-")).with_suffix(".run.txt")
            if run_info.is_file():
                groups[group][f"{when}_run"] = dict(
                    line.split(": ", 1) for line in run_info.read_text().splitlines() if ": " in line)
    lines = [
        "# Mutation testing of the core (mutmut 3)", "",
        "Survival = survived / (killed + survived); mutants mutmut did not reach (cut by the time limit),",
        "with no covering test, or timing out are counted apart. \"Behaviour\" leaves out the surviving",
        "mutants that only change a message (the arguments of a raise or a log call, a `what=` label).",
        "",
        "| module | run | killed | survived (message-only) | no tests | timeout | not run | survival | "
        "survival, behaviour |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for data in groups.values():
        modules = sorted({m for when in ("before", "after") if data[when] for m in data[when]})
        for module in modules:
            for when in ("before", "after"):
                c = (data[when] or {}).get(module)
                if c is None:
                    continue
                lines.append(
                    f"| {module.removeprefix('adaprune.')} | {when} | {c['killed']} | {c['survived']} "
                    f"({c['survived_message']}) | {c['no_tests']} | {c['timeout']} | {c['not_run']} | "
                    f"{_pct(c['survival'])} | {_pct(c['survival_behaviour'])} |")
    lines.append("")
    for group, data in groups.items():
        for when in ("before", "after"):
            info = data.get(f"{when}_run")
            if info:
                lines.append(f"- {group}, {when}: {info.get('modules')} with {info.get('tests')}; "
                             f"{info.get('wall_s')} s (limit {info.get('time_limit_s')}, "
                             f"cut: {info.get('cut_by_limit')}; mutants asked: {info.get('mutants asked')})")
    notes = list(args.note)
    if args.note_file:
        notes += [line for line in Path(args.note_file).read_text().splitlines() if line.strip()]
    if notes:
        lines += ["", *notes]
    write_results(args.stem, {"groups": groups, "notes": notes}, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="mutmut over modules in a copy of the tree")
    r.add_argument("--name", required=True)
    r.add_argument("--when", default="after", choices=("before", "after"))
    r.add_argument("--source", default=str(ROOT))
    r.add_argument("--modules", nargs="+", required=True)
    r.add_argument("--tests", nargs="+", required=True)
    r.add_argument("--time-limit", type=float, default=1500.0, help="seconds of wall clock for mutmut run")
    r.add_argument("--max-children", type=int, default=2)
    r.add_argument("--nice", type=int, default=5)
    r.add_argument("--mutmut", default=None, help="the mutmut executable (default: next to this python)")
    r.add_argument("--only-unkilled", default=None, help="a saved listing: rerun only what it did not kill")
    r.add_argument("--also", nargs="*", default=[], help="mutant name patterns rerun whatever the listing says")
    c = sub.add_parser("classify", help="add kinds to a saved listing from its mutants/ folder")
    c.add_argument("listing")
    c.add_argument("--mutants-root", required=True, help="the folder holding mutants/")
    c.add_argument("--out", required=True)
    p = sub.add_parser("report", help="before/after table from saved listings")
    p.add_argument("--before", nargs="*", default=[], help="group=listing")
    p.add_argument("--after", nargs="*", default=[], help="group=listing")
    p.add_argument("--stem", default="mutation")
    p.add_argument("--note", nargs="*", default=[])
    p.add_argument("--note-file", default=None, help="notes for the report, one markdown line each")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run_mutmut(args)
    elif args.cmd == "classify":
        classify_listing(Path(args.listing), Path(args.mutants_root), Path(args.out))
    else:
        report(args)


if __name__ == "__main__":
    main()
