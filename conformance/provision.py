"""Provisioning an implementation: its Debian packages, a virtualenv of its PyPI packages, its
build commands, as its manifest entry says (``install``). Done once per change: a stamp in its
home (.conformance/<id>/) records what was provisioned."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import time

from conformance.manifest import Implementation, fill, home

#: Build output and caches inside an implementation's directory, left out of its fingerprint.
_NOT_SOURCE = {"node_modules", "target", "__pycache__", "build", ".gradle"}


class ProvisionError(Exception):
    """An implementation could not be provisioned: one line says which step and why."""


def fingerprint(impl: Implementation) -> str:
    digest = hashlib.sha256(repr((impl.install, impl.command, impl.send)).encode())
    for root, dirs, files in os.walk(impl.directory):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_SOURCE and not d.startswith("."))
        for name in sorted(files):
            path = pathlib.Path(root, name)
            digest.update(str(path.relative_to(impl.directory)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(command: list[str], cwd: pathlib.Path, what: str, log) -> None:
    log(f"  $ {' '.join(command)}")
    try:
        run = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1200)
    except FileNotFoundError:
        raise ProvisionError(f"{what}: {command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what}: {' '.join(command)} ran over 20 minutes") from None
    if run.returncode != 0:
        tail = (run.stderr.strip() or run.stdout.strip() or "(no output)").splitlines()[-1]
        raise ProvisionError(f"{what}: {' '.join(command)} exited {run.returncode}: {tail}")


def _missing_debian(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        run = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in run.stdout:
            missing.append(package)
    return missing


def provision(impl: Implementation, log=print) -> float | None:
    """Make ``impl`` ready to run; the seconds it took, or None when it already was."""
    if impl.reference:
        return None
    target = home(impl)
    stamp = target / ".provisioned"
    wanted = fingerprint(impl)
    missing = _missing_debian(list(impl.install.get("debian", [])))
    if not missing and stamp.exists() and stamp.read_text() == wanted:
        return None
    started = time.monotonic()
    log(f"provisioning {impl.id} ({impl.client})")
    target.mkdir(parents=True, exist_ok=True)
    if missing:
        if os.geteuid() != 0:
            raise ProvisionError(f"{impl.id}: needs the Debian packages {' '.join(missing)} (apt-get install, as root)")
        env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
        try:
            _run([*env_prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                 target, impl.id, log)
        except ProvisionError:      # a machine that never updated its package lists
            _run(["apt-get", "update", "-q"], target, impl.id, log)
            _run([*env_prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                 target, impl.id, log)
    if impl.install.get("pypi"):
        venv = target / "venv"
        if venv.exists():
            shutil.rmtree(venv)
        _run([sys.executable, "-m", "venv", str(venv)], target, impl.id, log)
        _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *impl.install["pypi"]],
             target, impl.id, log)
    for command in impl.install.get("build", []):
        _run([fill(part, impl) for part in command], impl.directory, impl.id, log)
    stamp.write_text(wanted)
    return time.monotonic() - started
