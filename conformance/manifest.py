"""Implementations of the worker under test, as a manifest lists them (docs/conformance.md).

A manifest is TOML: one table per implementation, by id. ``load(path)`` reads and checks one;
a mistake in it is a ``ManifestError`` whose one line names the entry and the key.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import sys
from typing import Any

import tomllib

from workqueue.testing.contract import BEHAVIOURS, CAPABILITIES, EVENTS

QUEUE_PROFILES = {
    "contract": "the worker declares the queue with the contract's arguments; the spec's producer "
                "declares it alike",
    "own": "the framework declares its queue its own way: tasks go through the adapter only",
}
INSTALLERS = ("debian", "pypi", "build")
_ID = re.compile(r"[a-z0-9][a-z0-9-]*$")
_EXPECTED_KEYS = {"finding", "scenario", "step", "error", "mechanism", "references", "versions"}
_FINDING_KEYS = {"title", "mechanism", "references"}
#: The manifest's table of findings (not an implementation): ``[findings.<id>]``.
FINDINGS = "findings"


class ManifestError(Exception):
    """A manifest that cannot be used: the message is one line naming the entry and key."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """Why some implementations fail a scenario, written once (``[findings.<id>]``): the
    mechanism in the implementation's own terms, and upstream's word on it."""
    id: str
    title: str
    mechanism: str
    references: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Expected:
    """A strict expected failure: the scenario fails in ``step`` with an error matching ``error``
    (the symptom as observed) on ``versions`` (None: every version), because of ``mechanism``
    (``references`` upstream); ``finding``: the id it was written under, if any."""
    scenario: str
    step: str | tuple[str, ...]      # several: a race that shows in one of them
    error: str
    mechanism: str
    references: tuple[str, ...]
    versions: tuple[str, ...] | None
    finding: str | None = None

    def applies(self, scenario: str, version: str) -> bool:
        """``scenario``: its name as run (an outline's, with its example's values filled in)."""
        return scenario == self.scenario and (self.versions is None or version in self.versions)


@dataclasses.dataclass(frozen=True)
class Implementation:
    id: str
    title: str
    language: str
    client: str                        # library and version, as people name it
    directory: pathlib.Path            # its files (relative paths in the manifest start here)
    command: tuple[str, ...]           # starts one worker; {home}, {venv}, {dir}, {python} filled in
    capabilities: frozenset[str]
    events: frozenset[str]
    queue: str = "contract"
    send: tuple[str, ...] | None = None   # an adapter command (bodies on stdin), or the spec's producer
    install: dict[str, Any] = dataclasses.field(default_factory=dict)
    expected: tuple[Expected, ...] = ()
    reference: bool = False            # the project's own worker
    heartbeat: int = 1                 # the shortest heartbeat (s) it works with: "a short heartbeat"
    dead_letter: str | None = None     # queue "own": the queue it dead-letters to ({queue}: the task queue)
    rabbitmq: str | None = None        # the oldest RabbitMQ it runs on ("4.0": an AMQP 1.0 client)

    def fill(self, template: str) -> str:
        """{home}, {venv}, {dir} and {python} in one of its commands."""
        return fill(template, self)

    def unsupported(self, version: str) -> str | None:
        """Why no scenario applies on RabbitMQ ``version``, or None when the implementation runs there."""
        def parts(v):
            return tuple(int(p) for p in re.findall(r"\d+", v))
        if self.rabbitmq is None or parts(version) >= parts(self.rabbitmq):
            return None
        return f"not applicable: {self.id} needs RabbitMQ {self.rabbitmq} or later (this broker is {version})"

    def lacks(self, capability: str) -> str | None:
        """Why a scenario that needs ``capability`` is not applicable, or None when it is."""
        if capability in self.capabilities:
            return None
        what = CAPABILITIES.get(capability, capability)
        return f"not applicable: {self.id} lacks {capability} ({what})"


def _fail(where: str, message: str) -> ManifestError:
    return ManifestError(f"{where}: {message}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, "must be a non-empty list of strings")
    return tuple(value)


def _findings(raw: Any, where: str) -> dict[str, Finding]:
    if not isinstance(raw, dict):
        raise _fail(where, "must be a table of findings, by id")
    out = {}
    for key, entry in raw.items():
        at = f"{where}.{key}"
        if not _ID.match(key):
            raise _fail(at, "an id is lower-case letters, digits and dashes")
        if not isinstance(entry, dict):
            raise _fail(at, "must be a table")
        if unknown := set(entry) - _FINDING_KEYS:
            raise _fail(at, f"unknown key {sorted(unknown)[0]!r}")
        for field in ("title", "mechanism"):
            if not isinstance(entry.get(field), str) or not entry[field].strip():
                raise _fail(f"{at}.{field}", "is required (a non-empty string)")
        out[key] = Finding(key, " ".join(entry["title"].split()), " ".join(entry["mechanism"].split()),
                           _strings(entry.get("references"), f"{at}.references"))
    return out


def _expected(raw: Any, where: str, findings: dict[str, Finding]) -> Expected:
    """One expected failure: its own ``mechanism`` and ``references``, or a ``finding``'s."""
    if not isinstance(raw, dict):
        raise _fail(where, "must be a table")
    unknown = set(raw) - _EXPECTED_KEYS
    if unknown:
        raise _fail(where, f"unknown key {sorted(unknown)[0]!r}")
    finding = None
    if "finding" in raw:
        if raw["finding"] not in findings:
            raise _fail(f"{where}.finding", f"no finding {raw['finding']!r} (known: {', '.join(findings) or 'none'})")
        if "mechanism" in raw or "references" in raw:
            raise _fail(where, "a finding gives the mechanism and references: leave them out here")
        finding = findings[raw["finding"]]
        raw = {**raw, "mechanism": finding.mechanism, "references": list(finding.references)}
    for key in ("scenario", "step", "error", "mechanism"):
        if key == "step" and isinstance(raw.get(key), list):
            # A race in the implementation shows in one of several steps, each with its error
            # (matched by the one regular expression).
            if not raw[key] or not all(isinstance(s, str) and s.strip() for s in raw[key]):
                raise _fail(f"{where}.{key}", "is required (a non-empty string, or a list of them)")
            continue
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _fail(f"{where}.{key}", "is required (a non-empty string)")
    try:
        re.compile(raw["error"])
    except re.error as exc:
        raise _fail(f"{where}.error", f"not a regular expression ({exc})") from None
    versions = raw.get("versions", "all")
    step = tuple(raw["step"]) if isinstance(raw["step"], list) else raw["step"]
    return Expected(raw["scenario"], step, raw["error"], " ".join(raw["mechanism"].split()),
                    _strings(raw.get("references"), f"{where}.references"),
                    None if versions == "all" else _strings(versions, f"{where}.versions"),
                    finding.id if finding else None)


def parse(data: dict[str, Any], base: pathlib.Path, source: str,
          known_findings: dict[str, Finding] | None = None) -> list[Implementation]:
    """The implementations of a parsed manifest; ``base``: the directory its paths start from.
    Its expected failures may name its own findings and ``known_findings`` (the project's)."""
    out = []
    findings = {**(known_findings or {}), **_findings(data.get(FINDINGS, {}), f"{source}: [{FINDINGS}]")}
    for key, raw in data.items():
        if key == FINDINGS:
            continue
        where = f"{source}: [{key}]"
        if not _ID.match(key):
            raise _fail(where, "an id is lower-case letters, digits and dashes")
        if not isinstance(raw, dict):
            raise _fail(where, "must be a table")
        for field in ("title", "language", "client", "command"):
            if field not in raw:
                raise _fail(where, f"{field!r} is required")
        capabilities = frozenset(raw.get("capabilities", []))
        if behaviours := sorted(capabilities & set(BEHAVIOURS)):
            raise _fail(f"{where}.capabilities", f"{behaviours[0]!r} is a behaviour, not a capability: every "
                                                 f"worker runs {BEHAVIOURS[behaviours[0]]}; remove it")
        unknown = capabilities - set(CAPABILITIES)
        if unknown:
            raise _fail(f"{where}.capabilities", f"unknown capability {sorted(unknown)[0]!r} "
                                                 f"(known: {', '.join(CAPABILITIES)})")
        events = frozenset(raw.get("events", EVENTS))
        if events - set(EVENTS):
            raise _fail(f"{where}.events", f"unknown event {sorted(events - set(EVENTS))[0]!r}")
        if "received" not in events or "done" not in events:
            raise _fail(f"{where}.events", "must hold 'received' and 'done' (the broker cannot tell them)")
        queue = raw.get("queue", "contract")
        if queue not in QUEUE_PROFILES:
            raise _fail(f"{where}.queue", f"must be one of {', '.join(QUEUE_PROFILES)}")
        install = raw.get("install", {})
        if not isinstance(install, dict) or set(install) - set(INSTALLERS):
            raise _fail(f"{where}.install", f"keys are {', '.join(INSTALLERS)}")
        send = raw.get("send", "producer")
        if queue == "own" and send == "producer":
            raise _fail(f"{where}.send", "a framework that declares its own queue needs an adapter command")
        directory = (base / raw.get("dir", ".")).resolve()
        if not directory.is_dir():
            raise _fail(f"{where}.dir", f"no such directory: {directory}")
        dead_letter = raw.get("dead_letter")
        if dead_letter is not None:
            if queue != "own":
                raise _fail(f"{where}.dead_letter", 'only a framework with a queue of its own (queue = "own") names '
                                                    "its dead-letter queue; the contract's is WORKER_DEAD_LETTER")
            if not isinstance(dead_letter, str) or not dead_letter.strip():
                raise _fail(f"{where}.dead_letter", "must be a queue name ({queue}: the task queue's)")
        rabbitmq = raw.get("rabbitmq")
        if rabbitmq is not None and (not isinstance(rabbitmq, str) or not re.fullmatch(r"\d+\.\d+(\.\d+)?", rabbitmq)):
            raise _fail(f"{where}.rabbitmq", 'must be a RabbitMQ version, the oldest it runs on ("4.0")')
        heartbeat = raw.get("heartbeat", 1)
        if not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or not 1 <= heartbeat <= 60:
            raise _fail(f"{where}.heartbeat", "must be a whole number of seconds, 1 to 60")
        expected = tuple(_expected(e, f"{where}.expected[{i}]", findings)
                         for i, e in enumerate(raw.get("expected", [])))
        out.append(Implementation(
            id=key, title=str(raw["title"]), language=str(raw["language"]), client=str(raw["client"]),
            directory=directory, command=_strings(raw["command"], f"{where}.command"),
            capabilities=capabilities, events=events, queue=queue,
            send=None if send == "producer" else _strings(send, f"{where}.send"),
            install=install, expected=expected, reference=bool(raw.get("reference", False)),
            heartbeat=heartbeat, dead_letter=dead_letter, rabbitmq=rabbitmq))
    return out


def _read(path: pathlib.Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not TOML ({exc})") from None
    if not set(data) - {FINDINGS}:
        raise ManifestError(f"{path}: lists no implementation")
    return data


def findings(path: str | pathlib.Path) -> dict[str, Finding]:
    """The findings a manifest writes (``[findings.<id>]``), by id."""
    path = pathlib.Path(path)
    return _findings(_read(path).get(FINDINGS, {}), f"{path}: [{FINDINGS}]")


def load(path: str | pathlib.Path) -> list[Implementation]:
    """The implementations of the manifest at ``path``; its expected failures may name its own
    findings and the project's (BUILTIN's)."""
    path = pathlib.Path(path)
    known = {} if path.resolve() == BUILTIN else findings(BUILTIN)
    return parse(_read(path), path.parent, str(path), known)


def select(known: list[Implementation], wanted: str) -> list[Implementation]:
    """The implementations ``wanted`` names ("all", or comma-separated ids), in that order;
    an unknown id is a ManifestError naming the known ones."""
    by_id = {impl.id: impl for impl in known}
    if wanted == "all":
        return list(by_id.values())
    ids = [i.strip() for i in wanted.split(",") if i.strip()]
    unknown = [i for i in ids if i not in by_id] or ([] if ids else [""])
    if unknown:
        raise ManifestError(f"--impl: no implementation {unknown[0]!r} (known: {', '.join(by_id)})")
    return [by_id[i] for i in ids]


#: The project's own manifest, with the reference worker and the implementations it ships.
BUILTIN = pathlib.Path(__file__).resolve().parent / "implementations.toml"


def home(impl: Implementation) -> pathlib.Path:
    """Where an implementation's toolchain and build live: .conformance/<id>/ in the directory
    the run started from (the runner passes it on as WORKQUEUE_CONFORMANCE_HOME; ignored by git)."""
    base = os.environ.get("WORKQUEUE_CONFORMANCE_HOME") or str(pathlib.Path.cwd() / ".conformance")
    return pathlib.Path(base) / impl.id


def fill(template: str, impl: Implementation) -> str:
    """{home}, {venv}, {dir} and {python} in a command of the manifest."""
    return (template.replace("{home}", str(home(impl))).replace("{venv}", str(home(impl) / "venv"))
            .replace("{dir}", str(impl.directory)).replace("{python}", sys.executable))
