"""``make mutants``: switch each mechanism off and show that its scenarios fail.

    python -m mutants [--broker node] [--only ID[,ID...]] [--jobs N] [--list]

For each row of mutants/table.toml: copy the project's files into a scratch directory (never
the working tree), apply the row's edits there (each `find` must occur exactly once), and run
the row's scenarios in that copy with pytest against its own throwaway broker, stopping at the
first failure. A row is

  killed     a scenario failed (a step's assertion, in the test itself): the mutant was seen;
  SURVIVED   every scenario passed with the mechanism off: a hole in the specification;
  ERROR      the edit no longer applies, or pytest could not run the scenarios (a collection or
             set-up error, a broker that did not start): the row says nothing until fixed.

Prints one table (mutant, what it breaks, scenarios run, result, seconds, what caught it) and
exits 0 when every row is killed, 1 otherwise, 2 on bad usage. Ctrl+C or SIGTERM stops the
runs in progress (their pytest closes its broker) and removes the scratch copies.
"""

import argparse
import concurrent.futures
import dataclasses
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE = pathlib.Path(__file__).resolve().parent / "table.toml"
#: Seconds a row's pytest may run before it is stopped (the cluster rows boot three nodes).
ROW_TIMEOUT = 600
_stopping = threading.Event()
_running = set()               # Popen objects of the rows in progress
_lock = threading.Lock()


class Interrupted(Exception):
    """SIGINT or SIGTERM: stop the runs in progress and clean up."""


@dataclasses.dataclass
class Row:
    id: str
    breaks: str
    scenarios: list
    edits: list
    result: str = "not run"
    seconds: float = 0.0
    ran: int = 0
    caught_by: str = ""
    detail: str = ""


def load(path=TABLE):
    rows = []
    for entry in tomllib.loads(path.read_text())["mutant"]:
        rows.append(Row(entry["id"], entry["breaks"], list(entry["scenarios"]), list(entry["edit"])))
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"mutants: error: duplicate ids in {TABLE.name}")
    return rows


def project_files(root=ROOT):
    """The project's files as git sees them (tracked and new, not ignored); without git, the
    tree less the usual build and cache folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
        return [p for p in out.decode().split("\0") if p and (root / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", "reports"}
        return [str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(root).parts)]


def scratch_copy(directory):
    for name in project_files():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def apply_edits(directory, edits):
    """Apply each edit in the scratch copy; an error message when one does not apply."""
    for edit in edits:
        path = directory / edit["file"]
        if not path.is_file():
            return f"{edit['file']} does not exist"
        text = path.read_text()
        count = text.count(edit["find"])
        if count != 1:
            where = "is not in" if count == 0 else f"occurs {count} times in"
            return f"the text to replace {where} {edit['file']} (moved or changed? update the row)"
        path.write_text(text.replace(edit["find"], edit["replace"]))
    return None


def verdict(junit):
    """(result, tests run, the first failing test and its message) from a junit XML report."""
    try:
        cases = ET.parse(junit).getroot().iter("testcase")
    except (OSError, ET.ParseError):
        return "ERROR", 0, "no report"
    ran, failed, errors = 0, None, None
    for case in cases:
        if case.find("skipped") is not None:
            continue
        ran += 1
        name = f"{case.get('name')}"
        failure, error = case.find("failure"), case.find("error")
        if failure is not None and failed is None:
            failed = (name, failure.get("message") or "")
        if error is not None and errors is None:
            errors = (name, error.get("message") or "")
    if failed:
        return "killed", ran, f"{failed[0]}: {' '.join(failed[1].split())[:160]}"
    if errors:
        return "ERROR", ran, f"set-up error in {errors[0]}: {' '.join(errors[1].split())[:160]}"
    return ("SURVIVED" if ran else "ERROR"), ran, ""


def run_row(row, broker, timeout):
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"workqueue-mutant-{row.id}-") as tmp:
        directory = pathlib.Path(tmp)
        scratch_copy(directory)
        problem = apply_edits(directory, row.edits)
        if problem:
            row.result, row.detail = "ERROR", problem
            return row
        env = {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        imported = subprocess.run([sys.executable, "-c", "import workqueue; print(workqueue.__file__)"],
                                  cwd=directory, env=env, capture_output=True, text=True)
        if not imported.stdout.startswith(str(directory)):
            row.result = "ERROR"
            row.detail = f"the scratch copy's workqueue is not the one imported: {imported.stdout.strip()}"
            return row
        junit = directory / "mutant-junit.xml"
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--broker={broker}",
                   f"--junitxml={junit}", *row.scenarios]
        log = directory / "pytest.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            with _lock:
                _running.add(process)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                stop(process)
                code = None
            finally:
                with _lock:
                    _running.discard(process)
        row.seconds = time.monotonic() - started
        if _stopping.is_set():
            row.result, row.detail = "not run", "interrupted"
            return row
        if code is None:
            row.result, row.detail = "ERROR", f"pytest did not finish within {timeout} s"
            return row
        row.result, row.ran, info = verdict(junit)
        if code in (2, 3, 4, 5):                      # interrupted, internal, usage, no tests
            row.result = "ERROR"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            info = f"pytest exit {code}: {' | '.join(tail)[:300]}"
        if row.result == "killed":
            row.caught_by = info
        else:
            row.detail = info
    return row


def stop(process):
    """SIGINT to the row's pytest (it closes its broker), then SIGKILL to its group."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def table(rows):
    header = ("mutant", "what it breaks", "scenarios run", "result", "seconds")
    lines = [(r.id, r.breaks, f"{r.ran} of {len(r.scenarios)}", r.result, f"{r.seconds:.0f}") for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.id}: caught by {r.caught_by}" if r.caught_by else f"  {r.id}: {r.detail}"
             for r in rows if r.caught_by or r.detail]
    killed = sum(r.result == "killed" for r in rows)
    return "\n".join(out + ["", f"{killed} of {len(rows)} killed", *notes])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mutants", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 every mutant killed; 1 one survived or could not be "
                                       "run (ERROR); 2 bad usage; 130 interrupted")
    p.add_argument("--broker", choices=("node", "container"), default=os.environ.get("WORKQUEUE_BROKER") or "node",
                   help="broker backend for the scenarios (env WORKQUEUE_BROKER; default node)")
    p.add_argument("--only", default=None, metavar="ID[,ID...]", help="run these rows only")
    p.add_argument("--jobs", type=int, default=1, help="rows run at the same time, each with its own broker "
                   "(most of a row's time is a scenario waiting out its deadline: `make mutants` runs 6)")
    p.add_argument("--timeout", type=float, default=ROW_TIMEOUT, help="seconds one row may take")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    args = p.parse_args(argv)
    rows = load()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {r.id for r in rows})
        if unknown:
            p.error(f"no such mutant: {', '.join(unknown)}")
        rows = [r for r in rows if r.id in wanted]
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if args.list:
        for r in rows:
            print(f"{r.id}: {r.breaks}\n    " + "\n    ".join(r.scenarios))
        return 0

    def interrupted(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
    try:
        # The rows on a cluster first: they are the longest (three nodes to boot), and one that
        # started last would run alone at the end. The table keeps its order.
        first = sorted(rows, key=lambda r: not any("cluster" in s for s in r.scenarios))
        futures = [pool.submit(run_row, r, args.broker, args.timeout) for r in first]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            print(f"mutants: {r.id}: {r.result} ({r.seconds:.0f} s)", flush=True)
    except Interrupted:
        _stopping.set()
        with _lock:
            running = list(_running)
        for process in running:
            stop(process)
        pool.shutdown(wait=True, cancel_futures=True)
        print("mutants: interrupted; the runs in progress were stopped and their brokers closed", file=sys.stderr)
        return 130
    pool.shutdown()
    print(table(rows))
    print(f"({args.broker} backend, {time.monotonic() - started:.0f} s in all)")
    return 0 if all(r.result == "killed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
