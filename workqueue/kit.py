"""``workqueue-conformance``: the conformance suite as a kit other projects install.

    pip install 'workqueue[conformance]'
    workqueue-conformance --manifest manifest.toml [--impl ID,...] [--broker node|container|url] [--url URL]

Runs the specification's worker scenarios (features tagged @conformance) against the workers a
manifest describes, from any directory, and writes the table, JUnit XML and results JSON under
./reports/conformance/ (docs/conformance.md). The kit's files (the features, the steps, the
specification's pytest set-up and the runner) are installed with the package under
workqueue/_kit/; in a checkout of the project they are its own top-level directories.

Exit codes: those of the runner (0 every cell as expected; 1 a cell failed, or none ran; 2 bad
usage, a bad manifest, or the kit's extra missing; 3 a worker could not be provisioned).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

#: What the kit's run imports beside the library (the ``conformance`` extra).
NEEDS = ("pytest", "pytest_bdd", "xdist", "pytest_rabbitmq")


def kit_root() -> pathlib.Path | None:
    """The directory holding features/, steps/, conformance/ and the specification's
    conftest.py: the installed kit's, else the checkout's this module belongs to."""
    here = pathlib.Path(__file__).resolve().parent
    for candidate in (here / "_kit", here.parent):
        if all((candidate / name).is_dir() for name in ("features", "steps", "conformance")) and (
                candidate / "conftest.py").is_file():
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        print(f"workqueue-conformance: needs {', '.join(missing)}: pip install 'workqueue[conformance]'",
              file=sys.stderr)
        return 2
    root = kit_root()
    if root is None:
        print("workqueue-conformance: the kit's files (features/, steps/, conformance/) are not installed "
              "beside the package: reinstall workqueue", file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    from conformance.__main__ import main as run
    return int(run(argv, prog="workqueue-conformance"))


if __name__ == "__main__":
    sys.exit(main())
