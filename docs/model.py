"""What the page shows: the features as written, and each run's outcome for each scenario.

Features come from features/ (parsed with gherkin-official, the parser pytest-bdd uses); runs
come from report directories, each holding what ``make test`` writes: ``cucumber.json``
(pytest-bdd: steps, the failing step and its message), ``junit.xml`` (pytest: every test's
outcome, including expected failures and errors before the first step) and ``run.json``
(conftest.py: the RabbitMQ version, backend and commit of the run).
"""

import dataclasses
import enum
import json
import pathlib
import re
import xml.etree.ElementTree as ET

import tomllib

from workqueue.urls import redact

#: The tutorial's order; a directory of features/ not listed here comes after, by name.
CHAPTERS = ("dispatch", "reliability", "declaration", "operations", "production", "cluster")


class Status(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    EXPECTED_FAILURE = "expected failure"
    NOT_APPLICABLE = "not applicable"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


class ReportError(Exception):
    """A report directory that cannot be read: one line says which and why."""


@dataclasses.dataclass
class Outcome:
    status: Status
    step: str | None = None          # the failing step, as written with its keyword
    message: str | None = None       # one line
    detail: str | None = None        # the whole report text


@dataclasses.dataclass
class Run:
    directory: pathlib.Path
    version: str
    backend: str
    image: str | None
    commit: str | None
    modified: bool | None
    started: str | None
    exitstatus: int | None
    elements: dict          # (feature uri, scenario line) -> [cucumber element]
    junit: dict             # test name -> [(status, message, detail)]
    other: dict             # non-scenario tests: Status -> count
    debian: dict | None = None   # its Debian package, the patches undone or kept, what it lacks

    @property
    def major(self):
        return int(self.version.split(".")[0])

    @property
    def when(self):
        """When the run started, to the minute (UTC)."""
        import datetime
        try:
            at = datetime.datetime.fromisoformat(self.started).astimezone(datetime.timezone.utc)
        except (TypeError, ValueError):
            return "?"
        return at.strftime("%Y-%m-%d %H:%M UTC")

    @property
    def label(self):
        return f"{self.version} ({self.backend})"

    def key(self):
        return (tuple(int(p) if p.isdigit() else 0 for p in self.version.split(".")), self.backend)


@dataclasses.dataclass
class Step:
    keyword: str
    text: str
    line: int
    table: list | None = None


@dataclasses.dataclass
class Scenario:
    name: str
    line: int
    tags: list
    steps: list
    examples: list          # [{column: value}] for an outline, [] otherwise
    columns: list
    contrast: bool
    defects: list           # [(id, title, versions, references)], its own and its Examples blocks
    results: list = dataclasses.field(default_factory=list)   # per run: [(example label, Outcome)]
    example_defects: list = dataclasses.field(default_factory=list)  # per example: its defects

    def defects_of(self, row):
        """The defects of example ``row`` (the scenario's and its Examples block's); of the
        scenario, when it has no examples."""
        return self.example_defects[row] if row is not None and self.example_defects else self.defects


@dataclasses.dataclass
class Rule:
    name: str
    description: str
    contrast: bool
    scenarios: list


@dataclasses.dataclass
class Feature:
    uri: str
    name: str
    description: str
    tags: list
    rules: list             # [Rule]; scenarios outside a rule are in a Rule named ""
    pairs: list = dataclasses.field(default_factory=list)    # [(guarantee Rule | None, contrast Rule | None)]


@dataclasses.dataclass
class Chapter:
    key: str
    title: str
    features: list


# -- features -------------------------------------------------------------------------------------
def _tags(node):
    return [t["name"].lstrip("@") for t in node.get("tags", [])]


def _description(text):
    return " ".join((text or "").split())


def _scenario(node, inherited, defects):
    tags = inherited + _tags(node)
    steps = []
    for s in node["steps"]:
        table = None
        if s.get("dataTable"):
            table = [[c["value"] for c in row["cells"]] for row in s["dataTable"]["rows"]]
        steps.append(Step(s["keyword"].strip(), s["text"], s["location"]["line"], table))
    columns, examples, example_tags = [], [], []
    for block in node.get("examples", []):
        columns = [c["value"] for c in block["tableHeader"]["cells"]]
        rows = [dict(zip(columns, [c["value"] for c in row["cells"]], strict=True)) for row in block["tableBody"]]
        examples += rows
        example_tags += [_tags(block)] * len(rows)

    def known(keys):
        return [(key[len("defect_"):], *_defect(defects.get(key[len("defect_"):], {}), key[len("defect_"):]))
                for key in keys if key.startswith("defect_")]
    own = known(tags)
    per_example = [own + [d for d in known(t) if d not in own] for t in example_tags]
    every = own + [d for row in per_example for d in row if d not in own]
    every = [d for i, d in enumerate(every) if d not in every[:i]]
    return Scenario(name=node["name"], line=node["location"]["line"], tags=tags, steps=steps,
                    examples=examples, columns=columns, contrast="contrast" in tags,
                    defects=every, example_defects=per_example)


def _defect(entry, key):
    """(title, versions, references) of a defects.toml entry."""
    return entry.get("title", key), entry.get("versions", []), entry.get("references", [])


def load_features(features_dir):
    """The chapters of features/, in the tutorial's order."""
    from gherkin.parser import Parser

    features_dir = pathlib.Path(features_dir)
    defects_file = features_dir / "defects.toml"
    defects = tomllib.loads(defects_file.read_text()) if defects_file.exists() else {}
    chapters = {}
    for path in sorted(features_dir.rglob("*.feature")):
        uri = path.relative_to(features_dir).as_posix()
        doc = Parser().parse(path.read_text())["feature"]
        feature_tags = _tags(doc)
        rules, loose = [], []
        for child in doc["children"]:
            if "rule" in child:
                r = child["rule"]
                tags = feature_tags + _tags(r)
                rules.append(Rule(r["name"], _description(r["description"]), "contrast" in _tags(r),
                                  [_scenario(c["scenario"], tags, defects) for c in r["children"]
                                   if "scenario" in c]))
            elif "scenario" in child:
                loose.append(_scenario(child["scenario"], feature_tags, defects))
        if loose:
            rules.insert(0, Rule("", "", False, loose))
        feature = Feature(uri, doc["name"], _description(doc["description"]), feature_tags, rules)
        feature.pairs = _pairs(rules)
        chapter = uri.split("/")[0] if "/" in uri else ""
        chapters.setdefault(chapter, []).append(feature)
    order = [c for c in CHAPTERS if c in chapters] + sorted(c for c in chapters if c not in CHAPTERS)
    return [Chapter(c, c.capitalize() if c else "Other", chapters[c]) for c in order]


def _pairs(rules):
    """Each guarantee with the @contrast rule written after it, side by side."""
    pairs = []
    for rule in rules:
        if rule.contrast and pairs and pairs[-1][1] is None and pairs[-1][0] is not None:
            pairs[-1] = (pairs[-1][0], rule)
        elif rule.contrast:
            pairs.append((None, rule))
        else:
            pairs.append((rule, None))
    return pairs


def all_scenarios(chapters):
    for chapter in chapters:
        for feature in chapter.features:
            for rule in feature.rules:
                for scenario in rule.scenarios:
                    yield feature, scenario


# -- runs -----------------------------------------------------------------------------------------
_URL = re.compile(r"amqps?://[^\s'\"<>]+")


def clean(text):
    """Report text for the page: any broker URL's password hidden."""
    return _URL.sub(lambda m: redact(m.group(0)), text or "")


def _junit(path):
    """Test name -> [(Status, message, detail)] and the count of each status, from junit XML."""
    tests, root = {}, ET.parse(path).getroot()
    for case in root.iter("testcase"):
        status, message, detail = Status.PASSED, None, None
        for child in case:
            if child.tag in ("failure", "error"):
                status = Status.FAILED if child.tag == "failure" else Status.ERROR
                message, detail = child.get("message"), child.text
                break
            if child.tag == "skipped":
                expected = child.get("type") == "pytest.xfail"
                status = Status.EXPECTED_FAILURE if expected else Status.SKIPPED
                message, detail = child.get("message"), child.text
                break
        tests.setdefault(case.get("name"), []).append((status, message, detail, case.get("classname")))
    return tests


def load_run(directory):
    """One run's reports (a directory written by ``make test``)."""
    directory = pathlib.Path(directory)
    try:
        record = json.loads((directory / "run.json").read_text())
    except FileNotFoundError:
        raise ReportError(f"{directory}: no run.json (made by `make test`, or pytest with "
                          f"--cucumberjson={directory}/cucumber.json)") from None
    except ValueError as exc:
        raise ReportError(f"{directory}/run.json: not JSON ({exc})") from None
    if not record.get("rabbitmq"):
        raise ReportError(f"{directory}/run.json: the run never started a broker, so its RabbitMQ "
                          f"version is unknown")
    try:
        cucumber = json.loads((directory / record.get("cucumber", "cucumber.json")).read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{directory}: cannot read its cucumber JSON ({exc})") from None
    elements = {}
    for feature in cucumber:
        for element in feature.get("elements", []):
            elements.setdefault((feature["uri"], element["line"]), []).append(element)
    junit = {}
    if record.get("junit") and (directory / record["junit"]).exists():
        try:
            junit = _junit(directory / record["junit"])
        except ET.ParseError as exc:
            raise ReportError(f"{directory}/{record['junit']}: not junit XML ({exc})") from None
    scenario_ids = {e["id"] for es in elements.values() for e in es}
    other = {}
    for name, cases in junit.items():
        if name not in scenario_ids:
            for status, *_ in cases:
                other[status] = other.get(status, 0) + 1
    return Run(directory, record["rabbitmq"], record.get("backend", "?"), record.get("image"),
               record.get("commit"), record.get("modified"), record.get("started"), record.get("exitstatus"),
               elements, junit, other, record.get("debian"))


def _python_name(name):
    """pytest-bdd's test name for a scenario (to find one that failed before its first step)."""
    return "test_" + re.sub(r"[^\w]", "", name.replace(" ", "_")).lower()


def _first_error_line(detail):
    for line in (detail or "").splitlines():
        if line.startswith("E "):
            return line[1:].strip()
    return None


def _outcome(element, junit_cases, scenario, run, row=None):
    steps = element["steps"] if element else []
    failed = next((s for s in steps if s["result"]["status"] == "failed"), None)
    skipped = next((s for s in steps if s["result"]["status"] == "skipped"), None)
    # junit names a test by module and function, cucumber by function alone: two features with
    # a scenario of the same name give two junit cases of one name. Only an unambiguous case
    # is used (it also sees errors outside the steps); otherwise the steps say.
    case = junit_cases[0] if junit_cases and len(junit_cases) == 1 else None
    if case is not None and case[0] is not Status.PASSED:
        status, message, detail = case[0], case[1], case[2]
    elif failed is not None:
        status, message, detail = Status.FAILED, None, failed["result"].get("error_message")
    elif skipped is not None:
        expected = any(run.version in versions for _, _, versions, _ in scenario.defects_of(row))
        status, message, detail = (Status.EXPECTED_FAILURE if expected else Status.SKIPPED), None, None
    else:
        status, message, detail = Status.PASSED, None, None
    step = failed or skipped
    step_text = f"{step['keyword'].strip()} {step['name']}" if step and status is not Status.PASSED else None
    if status is Status.EXPECTED_FAILURE and not message:
        message = "; ".join(f"RabbitMQ defect {k}" for k, *_ in scenario.defects_of(row))
    if status is Status.PASSED:
        return Outcome(Status.PASSED)
    lines = (detail or "").strip().splitlines()
    message = message or _first_error_line(detail) or (lines[-1] if lines else None)
    return Outcome(status, step_text, clean(" ".join((message or "").split()))[:400] or None,
                   clean(detail) or None)


def _example_name(scenario, example):
    name = scenario.name
    for column, value in example.items():
        name = name.replace(f"<{column}>", value)
    return name


def attach(chapters, runs):
    """Give every scenario one list of (example label, Outcome) per run, in ``runs``' order."""
    for feature, scenario in all_scenarios(chapters):
        scenario.results = []
        examples = scenario.examples or [None]
        for run in runs:
            elements = run.elements.get((feature.uri, scenario.line), [])
            by_name = {e["name"]: e for e in elements}
            column = []
            for i, example in enumerate(examples):
                label = ", ".join(example.values()) if example else ""
                name = _example_name(scenario, example) if example else scenario.name
                element = by_name.get(name) or (elements[i] if len(elements) == len(examples) else None)
                if element is not None:
                    outcome = _outcome(element, run.junit.get(element["id"]), scenario, run,
                                       i if example else None)
                elif other_major(scenario, run):
                    outcome = Outcome(Status.NOT_APPLICABLE,
                                      message=f"tagged @{_major_tag(scenario)}: deselected on RabbitMQ {run.major}")
                else:
                    cases = run.junit.get(_python_name(scenario.name)) if not example else None
                    outcome = _outcome(None, cases, scenario, run) if cases else Outcome(Status.NOT_RUN)
                column.append((label, outcome))
            scenario.results.append(column)


def _major_tag(scenario):
    return next((t for t in scenario.tags if re.fullmatch(r"rabbitmq\d+", t)), None)


def other_major(scenario, run):
    tag = _major_tag(scenario)
    return tag is not None and int(tag[len("rabbitmq"):]) != run.major


def counts(chapters, runs):
    """Per run: Status -> number of scenario examples."""
    totals = [dict.fromkeys(Status, 0) for _ in runs]
    for _, scenario in all_scenarios(chapters):
        for i, column in enumerate(scenario.results):
            for _, outcome in column:
                totals[i][outcome.status] += 1
    return totals


# -- the conformance suite's results (python -m conformance: reports/conformance/*/results.json) --
@dataclasses.dataclass
class Conformance:
    """Every conformance run read: its columns (implementation, RabbitMQ version), the
    guarantees (feature, rule) and scenarios in the order first seen, and each cell."""
    implementations: list      # [{id, title, language, client}], in the runs' order
    versions: list             # RabbitMQ versions, in run order
    guarantees: list           # [(feature, rule)]
    scenarios: list            # [(feature, rule, scenario)]
    cells: dict                # (scenario key, implementation id, version) -> (Status, reason)

    def columns(self):
        return [(impl, version) for version in self.versions for impl in self.implementations
                if any(k[1] == impl["id"] and k[2] == version for k in self.cells)]

    def summary(self, guarantee, impl_id, version):
        """One Status for a guarantee's scenarios (failed over expected failure over pass; not
        applicable only when all are)."""
        from conformance.__main__ import summary
        return Status(summary([s.value for (key, i, v), (s, _) in self.cells.items()
                               if key[:2] == guarantee and i == impl_id and v == version]))


def _told(cell):
    """A cell's text: the failing step and what it saw, then (a finding) its id and why; then
    the settings its workers were started with."""
    reason = " ".join((cell.get("reason") or "").split())
    if cell.get("step") and cell.get("symptom"):
        seen = f"{cell['step']}: {' '.join(cell['symptom'].split())}"
        if cell["outcome"] == "expected failure":
            seen += f". Why{' (' + cell['finding'] + ')' if cell.get('finding') else ''}: {reason}"
        reason = seen
    if cell.get("settings"):
        reason = f"{reason} Settings: {cell['settings']}." if reason else f"Settings: {cell['settings']}."
    return reason


def load_conformance(paths):
    """The results files of conformance runs (each a run on one RabbitMQ version)."""
    impls, versions, guarantees, scenarios, cells = [], [], [], [], {}
    for path in paths:
        path = pathlib.Path(path)
        try:
            record = json.loads(path.read_text())
            version = record["rabbitmq"]
            run_impls, run_cells = record["implementations"], record["cells"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"{path}: not the results of a conformance run ({exc})") from None
        if version not in versions:
            versions.append(version)
        for impl in run_impls:
            if impl["id"] not in [i["id"] for i in impls]:
                impls.append(impl)
        for cell in run_cells:
            guarantee = (cell["feature"], cell["rule"])
            key = (cell["feature"], cell["rule"], cell["scenario"])
            if guarantee not in guarantees:
                guarantees.append(guarantee)
            if key not in scenarios:
                scenarios.append(key)
            cells[(key, cell["implementation"], version)] = (Status(cell["outcome"]), clean(_told(cell)))
    return Conformance(impls, versions, guarantees, scenarios, cells)


# -- upgrading: what changes between the versions run ---------------------------------------------
@dataclasses.dataclass
class Change:
    """A scenario (example) whose outcome differs from one version to the next, and why."""
    feature: str
    scenario: str
    before: Status
    after: Status
    why: str


def _why(scenario, outcome, version, row=None):
    """Why a scenario (its example ``row``) ends as it does on ``version``: the change or defect
    it is an expected failure of (features/defects.toml), else what the failing step saw."""
    titles = [title for _, title, versions, _ in scenario.defects_of(row) if version in versions]
    if outcome.status is Status.EXPECTED_FAILURE and titles:
        return "; ".join(titles)
    return outcome.message or outcome.status.value


def upgrades(chapters, runs):
    """For each two versions next to each other in ``runs`` (in version order; runs of one
    version on two backends count once, the first): [(from run, to run, [Change])]. Only
    outcomes both runs have (not "not run", and not "not applicable": a scenario of one major
    version only) are compared."""
    firsts = {}
    for i, run in enumerate(runs):
        firsts.setdefault(run.version, i)
    order = sorted(firsts.values(), key=lambda i: runs[i].key())
    skip = (Status.NOT_RUN, Status.NOT_APPLICABLE)
    out = []
    for a, b in zip(order, order[1:]):
        changes = []
        for feature, scenario in all_scenarios(chapters):
            for row, ((label, before), (_, after)) in enumerate(zip(scenario.results[a], scenario.results[b])):
                if before.status is after.status or before.status in skip or after.status in skip:
                    continue
                name = f"{scenario.name} ({label})" if label else scenario.name
                gone = after.status is Status.PASSED
                why = _why(scenario, before if gone else after, runs[a].version if gone else runs[b].version,
                           row if scenario.examples else None)
                changes.append(Change(feature.name, name, before.status, after.status,
                                      f"no longer: {why}" if gone else why))
        out.append((runs[a], runs[b], changes))
    return out


def conformance_upgrades(table):
    """For each two versions next to each other in the conformance runs: [(from, to, [(scenario,
    implementation, before Status, after Status, why)])], where both versions have the cell."""
    if table is None:
        return []
    key = lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.split("."))  # noqa: E731
    versions = sorted(table.versions, key=key)
    out = []
    for a, b in zip(versions, versions[1:]):
        changes = []
        for (scenario, impl_id, version), (after, why) in table.cells.items():
            if version != b or (scenario, impl_id, a) not in table.cells:
                continue
            before, before_why = table.cells[(scenario, impl_id, a)]
            if before is not after:
                changes.append((scenario[2], impl_id, before, after,
                                why if after is not Status.PASSED else f"no longer: {before_why}"))
        out.append((a, b, changes))
    return out
