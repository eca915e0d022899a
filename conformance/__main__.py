"""Run the conformance suite and print the table implementation x guarantee.

    python -m conformance                       # every implementation of the project's manifest
    python -m conformance --impl celery-reliable,go-amqp091
    python -m conformance --impl-file ../my-worker/manifest.toml --impl my-worker
    python -m conformance --list
    workqueue-conformance --manifest manifest.toml [--impl ID,...] [--broker node|container|url] [--url URL]

``workqueue-conformance`` is this runner installed as a kit (``pip install 'workqueue[conformance]'``,
workqueue/kit.py): with ``--manifest`` it runs that manifest's implementations only, from any
directory.

Each implementation is provisioned first (once per change), then one pytest run drives the
scenarios tagged @conformance against each, on one broker per test process (with ``--broker
url``, on the broker at ``--url``: the scenarios that must stop or configure a broker are then
not run, and the run exits 1). Reports go to REPORTS (default reports/conformance/runs/<time>-
<backend>/ under the directory the run starts from, a new directory each run; a run of every
implementation and scenario of the project's manifest is also reports/conformance/<backend>, a
link that make docs reads): results.json (every cell), one <id>.json per implementation,
table.md, junit.xml. Worker builds go to .conformance/<id>/ there too. Exit codes: 0 every cell
passed, failed as expected, or is not applicable; 1 some cell failed or was not run, or the
selection gave a chosen implementation no cell; 2 bad usage or a bad manifest (one line says
which); 3 an implementation could not be provisioned.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from conformance import manifest
from conformance.provision import ProvisionError, provision

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYMBOL = {"passed": "✔", "expected failure": "⚠", "not applicable": "–", "failed": "✘", "skipped": "○",
          "not run": "·"}


def guarantees(cells):
    """[(feature, rule)] in the order the cells first name them."""
    seen = []
    for cell in cells:
        key = (cell["feature"], cell["rule"])
        if key not in seen:
            seen.append(key)
    return seen


def summary(outcomes):
    """One cell for a guarantee's scenarios: failed if one failed, expected failure if one is,
    not applicable if all are, passed if every applicable one passed."""
    if not outcomes:
        return "not run"
    for status in ("failed", "skipped", "expected failure"):
        if status in outcomes:
            return status
    return "not applicable" if set(outcomes) == {"not applicable"} else "passed"


def table(results):
    """The table as Markdown: a row per guarantee, a column per implementation; then each cell
    that did not pass, with its reason."""
    impls = [i["id"] for i in results["implementations"]]
    cells = results["cells"]
    lines = [f"RabbitMQ {results.get('rabbitmq', '?')} ({results.get('backend', '?')})", "",
             "| guarantee | " + " | ".join(impls) + " |", "|---|" + "---|" * len(impls)]
    for feature, rule in guarantees(cells):
        row = [SYMBOL[summary([c["outcome"] for c in cells
                               if (c["feature"], c["rule"]) == (feature, rule) and c["implementation"] == i])]
               for i in impls]
        lines.append(f"| {rule} | " + " | ".join(row) + " |")
    lines += ["", "✔ passed  ⚠ strict expected failure  – not applicable  ✘ failed", ""]
    for cell in cells:
        if cell["outcome"] == "passed":
            continue
        reason = " ".join((cell["reason"] or "").split())
        head = f"- {SYMBOL[cell['outcome']]} {cell['implementation']}: {cell['scenario']}"
        if cell.get("finding"):
            head += f" [{cell['finding']}]"
        if cell.get("step") and cell.get("symptom"):
            # The failing step's own text and what it saw; then, for a finding, why.
            seen = f"{cell['step']}: {' '.join(cell['symptom'].split())}"
            lines.append(f"{head}: {seen}" + (f"\n  why: {reason}" if cell["outcome"] == "expected failure" else ""))
        else:
            lines.append(f"{head}: {reason}")
        if cell.get("settings"):
            lines.append(f"  settings: {cell['settings']}")
    return "\n".join(lines) + "\n"


def scenarios_text():
    """Every scenario the suite runs on a worker, with its steps and what it needs; the pace and
    deadlines every scenario shares first."""
    from pytest_bdd.parser import FeatureParser

    from steps import DEADLINE, LONG_TASK, SECONDS_PER_DOT
    lines = [f"Every scenario: a task takes {SECONDS_PER_DOT:g} s per dot in its body (WORKER_SECONDS_PER_DOT); "
             f"the long task is {LONG_TASK.count('.')} dots ({LONG_TASK.count('.') * SECONDS_PER_DOT:g} s); "
             f"each thing a step waits for has a deadline of {DEADLINE} s; a short heartbeat is the "
             f"manifest's heartbeat (1 s unless it says more), a task of 8 heartbeats 8 times that.", ""]
    base = ROOT / "features"
    for path in sorted(base.rglob("*.feature")):
        feature = FeatureParser(str(base), str(path.relative_to(base))).parse()
        for scenario in feature.scenarios.values():
            tags = set(scenario.tags) | set(feature.tags) | (set(scenario.rule.tags) if scenario.rule else set())
            if "conformance" not in tags:
                continue
            needs = sorted(t[len("needs_"):] for t in tags if t.startswith("needs_"))
            rule = f" > {scenario.rule.name}" if scenario.rule else ""
            lines.append(f"{path.relative_to(ROOT)}: {feature.name}{rule}")
            lines.append(f"  {scenario.keyword}: {scenario.name}" + (f"  (needs {', '.join(needs)})" if needs else ""))
            for table in scenario.examples:
                for example in table.examples:
                    values = zip(table.example_params, example)
                    lines.append("    example: " + ", ".join(f"<{k}> = {v}" for k, v in values))
            lines += [f"    {step.keyword} {step.name}" for step in scenario.steps]
            lines.append("")
    return "\n".join(lines)


def run_directory(root, backend, full, stamp):
    """Where a run's reports go: ``root/runs/<stamp>-<backend>/``, never over an earlier run's.
    A full run (every implementation of the project, every scenario) also becomes
    ``root/<backend>``, a link to it, which ``make docs`` reads (an older run's directory found
    there is moved into runs/ first)."""
    runs = root / "runs"
    target = runs / f"{stamp}-{backend}"
    n = 1
    while target.exists():
        n += 1
        target = runs / f"{stamp}-{backend}-{n}"
    target.mkdir(parents=True)
    if full:
        link = root / backend
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            link.rename(runs / f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(link.stat().st_mtime))}-{backend}-old")
        link.symlink_to(target.relative_to(root), target_is_directory=True)
    return target


def main(argv=None, prog="python -m conformance"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", action="append", default=[], metavar="PATH",
                        help="the manifest whose implementations to run (repeatable; default: the project's own)")
    parser.add_argument("--impl", default="all", help="comma-separated ids, or 'all' (default)")
    parser.add_argument("--impl-file", action="append", default=[], metavar="PATH",
                        help="a manifest of your own implementations (repeatable)")
    parser.add_argument("--broker", default="node", choices=["node", "container", "auto", "url"])
    parser.add_argument("--url", default=None,
                        help="with --broker url: the broker's amqp:// URL, of a user with the administrator tag "
                             "(default: env WORKQUEUE_BROKER_URL)")
    # A cell mostly waits (a task's seconds, a worker's start, an expected failure's deadline):
    # 200 cells on 2 cores took 583 s with 6 processes, 422 s with 12 (node, 2026-12-06).
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1) * 6),
                        help="test processes, each with its own broker (default: 6 per core)")
    parser.add_argument("--reports", default=None, help="directory of the reports")
    parser.add_argument("--list", action="store_true", help="list the implementations and exit")
    parser.add_argument("--scenarios", action="store_true",
                        help="list the scenarios run on each worker (steps, needs, pace, deadlines) and exit")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("WORKQUEUE_BROKER_URL")
    if args.broker == "url" and not url:
        print(f"{prog}: --broker url needs --url amqp://USER:PASSWORD@HOST:PORT/ (or WORKQUEUE_BROKER_URL)",
              file=sys.stderr)
        return 2
    try:
        known = []
        for path in args.manifest or [manifest.BUILTIN]:
            known += manifest.load(path)
        for path in args.impl_file:
            known += manifest.load(path)
        chosen = [] if args.list else manifest.select(known, args.impl)
    except manifest.ManifestError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.scenarios:
        print(scenarios_text())
        return 0
    if args.list:
        for impl in known:
            print(f"{impl.id:18} {impl.language:11} {impl.client:38} {impl.title}")
        return 0
    ids = [impl.id for impl in chosen]
    for impl in chosen:
        try:
            took = provision(impl, log=lambda line: print(line, flush=True))
        except ProvisionError as exc:
            print(f"{prog}: cannot provision {exc}", file=sys.stderr)
            return 3
        if took is not None:
            print(f"provisioned {impl.id} in {took:.0f} s", flush=True)
    full = args.impl == "all" and not args.impl_file and not args.manifest and not args.pytest_args
    reports = pathlib.Path(args.reports).resolve() if args.reports else run_directory(
        pathlib.Path.cwd() / "reports" / "conformance", args.broker, full, time.strftime("%Y%m%d-%H%M%S"))
    print(f"{prog}: reports go to {reports}", flush=True)
    reports.mkdir(parents=True, exist_ok=True)
    results_path = reports / "results.json"
    results_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", str(ROOT / "conformance"), "-m", "conformance",
               f"--broker={args.broker}", "--impl", ",".join(ids), f"--conformance-results={results_path}",
               "-n", str(args.jobs), "--dist", "loadgroup", "-p", "no:cacheprovider",
               f"--junitxml={reports / 'junit.xml'}",
               *[f"--manifest={pathlib.Path(p).resolve()}" for p in args.manifest],
               *[f"--impl-file={pathlib.Path(p).resolve()}" for p in args.impl_file], *args.pytest_args]
    # The workers' builds (.conformance/) belong to the starting directory; the URL (it holds a
    # password) goes by the environment, never on a command line.
    env = {**os.environ, "WORKQUEUE_CONFORMANCE_HOME": str(pathlib.Path.cwd() / ".conformance")}
    if args.broker == "url" and url:
        env["WORKQUEUE_BROKER_URL"] = url
    run = subprocess.run(command, cwd=ROOT, env=env)
    if not results_path.exists():
        print(f"{prog}: the run wrote no results (pytest exited {run.returncode})", file=sys.stderr)
        return 1 if run.returncode == 1 else 2
    results = json.loads(results_path.read_text())
    for impl in results["implementations"]:
        mine = {**results, "implementations": [impl],
                "cells": [c for c in results["cells"] if c["implementation"] == impl["id"]]}
        (reports / f"{impl['id']}.json").write_text(json.dumps(mine, indent=2) + "\n")
    text = table(results)
    (reports / "table.md").write_text(text)
    print(text)
    failed = any(c["outcome"] in ("failed", "skipped") for c in results["cells"])
    if not results["cells"]:
        print(f"{prog}: the selection ran no scenario: no cell for any implementation", file=sys.stderr)
        return 1
    missing = sorted({i["id"] for i in results["implementations"]} - {c["implementation"] for c in results["cells"]})
    if missing:
        print(f"{prog}: no cell for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 1 if failed or run.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
