"""Build the specification's page from features/ and the reports of one or more runs.

    python -m docs                          # every run under reports/runs/
    python -m docs reports/runs/node -o page.html

Each run directory is what ``make test`` writes (reports/runs/<BROKER>/: cucumber.json,
junit.xml, run.json). Exit codes: 0 page written; 2 bad usage, no run found, or a report that
cannot be read (one line says which); 3 the docs extra is missing.
"""

import argparse
import base64
import datetime
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYMBOL = {"passed": "✔", "failed": "✘", "error": "✘", "expected failure": "⚠",
          "not applicable": "–", "skipped": "○", "not run": "·"}


def build(run_dirs, output, features_dir=ROOT / "features", source_url=None, pictures=(), bench=None,
          conformance=()):
    """Write the page to ``output``; returns the runs, in column order."""
    from docs import model
    try:
        import jinja2
    except ImportError:
        raise model.ReportError("jinja2 is missing: pip install 'workqueue[docs]'") from None
    chapters = model.load_features(features_dir)
    runs = sorted((model.load_run(d) for d in run_dirs), key=lambda r: r.key())
    model.attach(chapters, runs)
    table = model.load_conformance(conformance) if conformance else None
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)

    def link(uri, line):
        if source_url:
            return f"{source_url.rstrip('/')}/{uri}#L{line}"
        return f"{os.path.relpath(pathlib.Path(features_dir) / uri, output.parent.resolve())}#L{line}"

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    versions = [r.version for r in runs]
    html = env.get_template("page.html.j2").render(
        chapters=chapters, runs=runs, statuses=list(model.Status), counts=model.counts(chapters, runs),
        symbol={s: SYMBOL[s.value] for s in model.Status}, link=link,
        duplicate_versions=len(set(versions)) < len(versions),
        commits=sorted({r.commit[:10] for r in runs if r.commit}),
        built=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        pictures=[(p.name, base64.b64encode(p.read_bytes()).decode()) for p in pictures],
        bench=bench, conformance=table, upgrades=model.upgrades(chapters, runs),
        conformance_upgrades=model.conformance_upgrades(table))
    output.write_text(html, encoding="utf-8")
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m docs", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 page written; 2 bad usage, no run, or an unreadable "
                                       "report; 3 the docs extra (jinja2) is missing")
    p.add_argument("runs", nargs="*", type=pathlib.Path,
                   help="run directories (default: every directory under reports/runs/ with a run.json)")
    p.add_argument("-o", "--output", type=pathlib.Path, default=pathlib.Path("reports/specification.html"),
                   help="the page to write (default: reports/specification.html)")
    p.add_argument("--features", type=pathlib.Path, default=ROOT / "features", help=argparse.SUPPRESS)
    p.add_argument("--conformance", nargs="*", type=pathlib.Path, default=None, metavar="RESULTS",
                   help="results of conformance runs (default: every reports/conformance/*/results.json)")
    p.add_argument("--source-url", help="link scenarios to BASE/<feature>#L<line> (for example a "
                                        "repository's features/ at a commit) instead of the local files")
    args = p.parse_args(argv)
    from docs import model
    runs = args.runs or sorted(d.parent for d in pathlib.Path("reports/runs").glob("*/run.json"))
    if not runs:
        p.error("no runs: run `make test` first (it writes reports/runs/<BROKER>/), or name run directories")
    reports = args.output.parent
    pictures = sorted(reports.glob("*.png")) if reports.is_dir() else []
    pictures = [x for x in pictures if not x.name.startswith("specification")]   # not the page's own
    bench = (reports / "bench.txt").read_text() if (reports / "bench.txt").exists() else None
    conformance = (args.conformance if args.conformance is not None
                   else sorted(pathlib.Path("reports/conformance").glob("*/results.json")))
    try:
        built = build(runs, args.output, args.features, args.source_url, pictures, bench, conformance)
    except model.ReportError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 3 if "jinja2 is missing" in str(exc) else 2
    print(f"{args.output}: {len(built)} run(s): "
          + ", ".join(f"RabbitMQ {r.label}" for r in built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
