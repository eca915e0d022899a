"""A fresh virtualenv with the project installed from a copy of its files, as a new user gets it
(tests/test_install.py: no extras; tests/test_conformance.py: the conformance kit)."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def copy_project(source):
    """The project's files as git sees them (tracked, and new ones not ignored), copied into
    ``source``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)


def fresh_install(base, extras="", timeout=600):
    """(the venv's python, the copy it was installed from): ``pip install '<copy>[extras]'`` into
    a new virtualenv under ``base``."""
    source = base / "source"
    copy_project(source)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"{source}[{extras}]" if extras else str(source)],
                             capture_output=True, text=True, timeout=timeout)
    assert install.returncode == 0, install.stderr[-2000:]
    return python, source
