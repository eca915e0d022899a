"""``make mutants``: switch each mechanism off and show that its scenarios fail, in a Then.

    python -m mutants [--broker node] [--only ID[,ID...]] [--jobs N] [--list]

A control run: the scenarios of every row, unmutated, in a scratch copy of the project's files;
on the node backend beside the rows, with half as many test processes as rows run at once
(``--jobs``; the version is this machine's rabbitmq-server package), elsewhere first, with as
many. A row whose control failed is an ERROR, whatever its own run did. For each row of
mutants/table.toml: a scratch copy (never the working tree), the row's edits (each `find` must
occur exactly once), every edited file compiled and every command the scenarios start imported,
and the row's scenarios run with pytest against a throwaway broker of their own, stopping at the
first failure. Where a scenario failed is learnt from pytest-bdd itself (its step hooks, through
the plugin mutants/verdict.py), never from the text it printed. A row is

  killed     a Then step (or the step the row names in `expect`; for a plain test, the test
             function) failed on its own check: an AssertionError, or a wait on an
             observable condition that ran out (TimeoutError); or a known defect's scenario
             (a strict expected failure of features/defects.toml) passed: XPASS(strict);
  SURVIVED   every scenario passed with the mechanism off: a hole in the specification;
  ERROR      anything else, with the step and its message: the edit no longer applies, a file
             does not compile or a command does not import, the control run of one of its
             scenarios failed, a Given or When failed (even on an assertion), a fixture or a
             broker did not start, a worker exited before it ever consumed, a teardown failed,
             the row ran out of time, a scenario that is a known defect's expected failure
             on this version failed as expected again (it cannot tell); or the code under
             test crashed ("crashed": a command or a worker printed a traceback), whichever
             step then failed. Such a row says nothing until it is fixed.

A row whose path exists on some RabbitMQ versions only (``versions``) is run only against those
(``elsewhere`` on any other: the node's package or the control run tells which version the
broker is); ``--versioned``
runs those rows alone. Prints one table (mutant, what it breaks, control, scenarios run,
result, seconds, the step that caught it and the first line of its message) and exits 0 when
every row run is killed, 1 otherwise, 2 on bad usage, 130 when interrupted. Ctrl+C or SIGTERM stops the runs in progress
(their pytest closes its broker) and removes the scratch copies.
"""

import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE = pathlib.Path(__file__).resolve().parent / "table.toml"
#: Seconds a row's pytest may run before it is stopped (the cluster rows boot three nodes).
ROW_TIMEOUT = 600
#: The commands the scenarios start, each of which must import in a mutated copy.
COMMANDS = ("workqueue.worker", "workqueue.new_task", "workqueue.status")
_stopping = threading.Event()
_running = set()               # Popen objects of the runs in progress
_lock = threading.Lock()


class Interrupted(Exception):
    """SIGINT or SIGTERM: stop the runs in progress and clean up."""


@dataclasses.dataclass
class Row:
    id: str
    breaks: str
    scenarios: list
    edits: list
    expect: str | None = None        # a step (regular expression) that may catch it besides a Then
    versions: list | None = None     # the RabbitMQ versions whose path it breaks (None: every one)
    result: str = "not run"
    control: str = "not run"
    seconds: float = 0.0
    ran: int = 0
    caught_by: str = ""
    detail: str = ""


def load(path=TABLE):
    rows = []
    for entry in tomllib.loads(path.read_text())["mutant"]:
        rows.append(Row(entry["id"], entry["breaks"], list(entry["scenarios"]), list(entry["edit"]),
                        entry.get("expect"), entry.get("versions")))
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


def scratch_env(directory, verdicts):
    env = {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1",
           "WORKQUEUE_VERDICTS": str(verdicts)}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def check_copy(directory, env, edited=()):
    """An error message when an edited file does not compile, or the package or a command the
    scenarios start does not import from the scratch copy; None when all is well."""
    for name in sorted(set(edited)):
        if name.endswith(".py"):
            try:
                compile((directory / name).read_text(), name, "exec")
            except SyntaxError as exc:
                return f"{name} does not compile: line {exc.lineno}: {exc.msg}"
    modules = [*COMMANDS, *(n[:-3].replace("/", ".") for n in edited if n.endswith(".py"))]
    probe = ("import importlib, sys\n"
             "for m in sys.argv[1:]:\n"
             "    importlib.import_module(m)\n"
             "import workqueue; print(workqueue.__file__)")
    imported = subprocess.run([sys.executable, "-c", probe, *dict.fromkeys(modules)], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=120)
    if imported.returncode != 0:
        last = (imported.stderr.strip().splitlines() or ["(no message)"])[-1]
        return f"the scratch copy does not import: {last[:200]}"
    if not imported.stdout.startswith(str(directory)):
        return f"the scratch copy's workqueue is not the one imported: {imported.stdout.strip()}"
    return None


def run_pytest(directory, env, args, timeout, log_name):
    """Run pytest in the scratch copy; its exit code, or None when it ran out of time."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutants.verdict", *args]
    with open(directory / log_name, "wb") as out:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        with _lock:
            _running.add(process)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            return None
        except BaseException:            # interrupted while waiting here (the control run)
            stop(process)
            raise
        finally:
            with _lock:
                _running.discard(process)


def read_verdicts(path):
    """{node id: record} written by mutants/verdict.py (the last record of a node id wins)."""
    out = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        out[record["nodeid"]] = record
    return out


def _matches(nodeid, scenario):
    nodeid = re.sub(r"@[^\[\]@]*$", "", nodeid)       # pytest-xdist's group suffix (@workqueue-cluster:...)
    return nodeid == scenario or nodeid.startswith(scenario + "[")


def records_for(records, scenario):
    return [r for nodeid, r in records.items() if _matches(nodeid, scenario)]


def describe_failure(record):
    where = record.get("step") or f"the test's {record.get('phase', 'call')}"
    message = record.get("message") or ""
    exception = record.get("exception") or "failure"
    return f"{where}: {exception}: {message}" if message else f"{where}: {exception}"


def classify(record, expect=None):
    """(result, text) for the failed test ``record``: killed only on a Then's own check (or the
    step ``expect`` names, or a plain test's function), ERROR for anything else."""
    text = describe_failure(record)
    step_type = record.get("step_type")
    if record.get("xpass") and record.get("phase") == "call":
        return "killed", f"XPASS(strict): the known defect's scenario passed: {record.get('message', '')[:200]}"
    if record.get("crashed"):
        return "ERROR", f"crashed: {record['crashed']}; then {text}"
    if record.get("phase") != "call":
        return "ERROR", f"{record.get('phase')} error: {text}"
    if not record.get("assertion"):
        if record.get("exception") == "WorkerDidNotStart":
            return "ERROR", f"a worker crashed at start: {text}"
        if step_type is not None and not record.get("in_body"):
            return "ERROR", f"a fixture of the step failed: {text}"
        return "ERROR", f"not a check's failure: {text}"
    if step_type is None or step_type == "then":
        return "killed", text
    if expect and re.search(expect, record.get("step") or ""):
        return "killed", text
    return "ERROR", f"caught in a {step_type.capitalize()}, not a Then: {text}"


def judge_run(code, ran, expect=None):
    """(result, text) of a mutated run that ended with pytest's exit ``code``, from the verdicts
    of the tests it ran (skipped ones left out). A scenario that is a strict expected failure on
    this version (a known defect) and failed as expected again says nothing about the edit: it
    fails with or without it, and only its XPASS could kill the row; a row left with such a
    scenario and no failure is an ERROR, not SURVIVED (SURVIVED: every scenario passed)."""
    failed = next((r for r in ran if r["outcome"] not in ("passed", "xfailed")), None)
    if failed is not None:
        if failed["outcome"] != "failed":
            return "ERROR", f"{failed['nodeid']} {failed['outcome']}"
        return classify(failed, expect)
    expected = next((r for r in ran if r["outcome"] == "xfailed"), None)
    if code == 0 and expected is not None:
        return "ERROR", (f"{expected['nodeid']} is a known defect's expected failure on this RabbitMQ "
                         "version: it fails with or without the edit (only its XPASS would kill the row)")
    if code == 0 and ran:
        return "SURVIVED", ""
    return "ERROR", f"pytest exit {code} and no failing test recorded"


def control_run(rows, broker, jobs, timeout):
    """Run every row's scenarios once, unmutated, in one scratch copy with ``jobs`` test
    processes; set each row's control to "passed" or to why not. Returns the seconds it took and
    the RabbitMQ version the scenarios ran against (None when no broker started)."""
    started = time.monotonic()
    scenarios = list(dict.fromkeys(s for r in rows for s in r.scenarios))
    with tempfile.TemporaryDirectory(prefix="workqueue-mutant-control-") as tmp:
        directory = pathlib.Path(tmp)
        scratch_copy(directory)
        verdicts = directory / "verdicts.jsonl"
        env = scratch_env(directory, verdicts)
        problem = check_copy(directory, env)
        if problem is None:
            workers = ["-n", str(min(jobs, len(scenarios))), "--dist", "loadgroup"] if jobs > 1 else []
            code = run_pytest(directory, env, [f"--broker={broker}", *workers, *scenarios], timeout, "control.log")
            if code is None:
                problem = f"the control run did not finish within {timeout:g} s"
            elif code in (2, 3, 4, 5):
                tail = (directory / "control.log").read_text(errors="replace").strip().splitlines()[-3:]
                problem = f"the control run's pytest exited {code}: {' | '.join(tail)[:300]}"
        records = read_verdicts(verdicts)
        version = next((r["rabbitmq"] for r in records.values() if r.get("rabbitmq")), None)
        for row in rows:
            if problem:
                row.control = f"ERROR: {problem}"
                continue
            row.control = "passed"
            for scenario in row.scenarios:
                found = records_for(records, scenario)
                # a known defect's scenario (features/defects.toml) passes its control as an
                # expected failure; the row's kill is then its XPASS
                failed = [r for r in found if r["outcome"] not in ("passed", "xfailed")]
                if not found:
                    row.control = f"{scenario} did not run"
                elif failed:
                    r = failed[0]
                    row.control = (f"{r['nodeid']} {r['outcome']}: {describe_failure(r)}"
                                   if r["outcome"] == "failed" else f"{r['nodeid']} {r['outcome']}")
                if row.control != "passed":
                    break
    return time.monotonic() - started, version


def package_version(broker):
    """The RabbitMQ version the node backend runs, from this machine's rabbitmq-server package
    (upstream's part of its Debian version), without starting a broker; None for another backend
    (the control run then goes first and tells)."""
    if broker != "node":
        return None
    from workqueue.testing import debian
    parsed = debian.parse(debian.installed_package())
    return ".".join(str(part) for part in parsed[:3]) if parsed else None


def judge_versions(rows, version):
    """Mark the rows whose path does not exist on ``version`` as run elsewhere."""
    for r in rows:
        if r.versions and version not in r.versions:
            r.result, r.control = "elsewhere", "passed"
            r.detail = f"its path exists on RabbitMQ {', '.join(r.versions)} only; this run: {version}"


def judge_control(row):
    """A row whose scenarios did not pass unmutated says nothing, whatever its own run did."""
    if row.control != "passed" and row.result != "elsewhere":
        row.result, row.detail = "ERROR", "control failed: the scenarios fail without the mutant"


def run_row(row, broker, timeout):
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"workqueue-mutant-{row.id}-") as tmp:
        directory = pathlib.Path(tmp)
        scratch_copy(directory)
        problem = apply_edits(directory, row.edits)
        verdicts = directory / "verdicts.jsonl"
        env = scratch_env(directory, verdicts)
        problem = problem or check_copy(directory, env, [e["file"] for e in row.edits])
        if problem:
            row.result, row.detail = "ERROR", problem
            return row
        code = run_pytest(directory, env, ["-x", f"--broker={broker}", *row.scenarios], timeout, "pytest.log")
        row.seconds = time.monotonic() - started
        if _stopping.is_set():
            row.result, row.detail = "not run", "interrupted"
            return row
        if code is None:
            row.result, row.detail = "ERROR", f"pytest did not finish within {timeout:g} s"
            return row
        records = read_verdicts(verdicts)
        ran = [r for s in row.scenarios for r in records_for(records, s) if r["outcome"] != "skipped"]
        row.ran = len(ran)
        if code in (2, 3, 4, 5):                      # interrupted, internal, usage, no tests
            tail = (directory / "pytest.log").read_text(errors="replace").strip().splitlines()[-3:]
            row.result, row.detail = "ERROR", f"pytest exit {code}: {' | '.join(tail)[:300]}"
            return row
        row.result, text = judge_run(code, ran, row.expect)
        if row.result == "killed":
            row.caught_by = text
        else:
            row.detail = text
    return row


def stop(process):
    """SIGINT to the run's pytest (it closes its broker), then SIGKILL to its group."""
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


def _short(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def table(rows, width=110):
    header = ("mutant", "what it breaks", "control", "scenarios run", "result", "seconds")
    lines = [(r.id, _short(r.breaks, 70), "passed" if r.control == "passed" else "FAILED",
              f"{r.ran} of {len(r.scenarios)}", r.result, f"{r.seconds:.0f}") for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = []
    for r in rows:
        if r.control != "passed":
            notes.append(f"  {r.id}: control: {_short(r.control, width)}")
        if r.caught_by:
            notes.append(f"  {r.id}: caught by {_short(r.caught_by, width)}")
        elif r.detail:
            notes.append(f"  {r.id}: {_short(r.detail, width)}")
    killed = sum(r.result == "killed" for r in rows)
    elsewhere = sum(r.result == "elsewhere" for r in rows)
    judged = f"{killed} of {len(rows) - elsewhere} killed, each by the step named below" + (
        f"; {elsewhere} run on another RabbitMQ version (`versions`)" if elsewhere else "")
    return "\n".join(out + ["", judged, *notes])


def report_control(rows, version, seconds):
    passed = sum(r.control == "passed" for r in rows if r.result != "elsewhere")
    print(f"mutants: control run: the scenarios of {passed} of {sum(r.result != 'elsewhere' for r in rows)} rows "
          f"passed unmutated on RabbitMQ {version or '(unknown)'} ({seconds:.0f} s)", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mutants", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 every mutant killed by a Then; 1 one survived or could "
                                       "not be judged (ERROR); 2 bad usage; 130 interrupted")
    p.add_argument("--broker", choices=("node", "container"), default=os.environ.get("WORKQUEUE_BROKER") or "node",
                   help="broker backend for the scenarios (env WORKQUEUE_BROKER; default node)")
    p.add_argument("--only", default=None, metavar="ID[,ID...]", help="run these rows only")
    p.add_argument("--jobs", type=int, default=1, help="rows run at the same time, each with its own broker, "
                   "and the control run's test processes (most of a row's time is a scenario waiting "
                   "out its deadline: `make mutants` runs 8)")
    p.add_argument("--timeout", type=float, default=ROW_TIMEOUT, help="seconds one row (or the control run) may take")
    p.add_argument("--versioned", action="store_true",
                   help="only the rows whose path exists on some RabbitMQ versions only (`versions` in "
                        "table.toml): CI runs them on the 4.3.6 container")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    args = p.parse_args(argv)
    rows = load()
    if args.versioned:
        rows = [r for r in rows if r.versions]
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
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs + 1)
    try:
        known = package_version(args.broker)
        if known:
            # The control run beside the rows (it took a fifth of the node's run when it went
            # first: 101 of 452 s, 2026-12-06); a row is judged once its control is known.
            judge_versions(rows, known)
            control = pool.submit(control_run, [r for r in rows if r.result != "elsewhere"], args.broker,
                                  max(1, args.jobs // 2), args.timeout)
        else:
            seconds, version = control_run(rows, args.broker, args.jobs, args.timeout)
            report_control(rows, version, seconds)
            judge_versions(rows, version)
        # The rows on a cluster first: they are the longest (three nodes to boot), and one that
        # started last would run alone at the end. The table keeps its order.
        todo = sorted((r for r in rows if r.control in ("passed", "not run") and r.result != "elsewhere"),
                      key=lambda r: not any("cluster" in s for s in r.scenarios))
        futures = [pool.submit(run_row, r, args.broker, args.timeout) for r in todo]
        if known:
            seconds, version = control.result()
            report_control(rows, version, seconds)
            if version is not None and version != known:          # None: no broker started
                for r in rows:
                    if r.result != "elsewhere":
                        r.control = f"ERROR: the control ran on RabbitMQ {version}, the package is {known}"
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            judge_control(r)
            print(f"mutants: {r.id}: {r.result} ({r.seconds:.0f} s)", flush=True)
        for r in rows:
            judge_control(r)                    # and the rows not run for it
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
    failing = not_killed(rows)
    if failing:
        print(failing)      # last, where a log's tail (CI's) shows it
    return 0 if not failing else 1


def not_killed(rows, width=600):
    """The rows that fail the run, each with why, or "" when every row was killed (or ran
    elsewhere)."""
    lines = []
    for r in rows:
        if r.result in ("killed", "elsewhere"):
            continue
        why = [f"control: {r.control}"] if r.control != "passed" else []
        why += [r.detail] if r.detail else []
        lines.append(f"  {r.id}: {r.result}: {_short('; '.join(why) or 'no detail', width)}")
    return f"mutants: {len(lines)} row(s) not killed:\n" + "\n".join(lines) if lines else ""


if __name__ == "__main__":
    sys.exit(main())
