"""Open the built page in a real browser (Debian's chromium, driven by selenium) and check
what a reader must find there; save a screenshot.

    python -m docs.browser reports/specification.html --versions 3.10.8 4.0.5 4.3.6

Exit codes: 0 the page holds every feature and scenario and the versions; 1 it does not (each
missing thing on its own line); 2 bad usage, or no browser (one line saying what to install).
"""

import argparse
import pathlib
import shutil
import sys

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class NoBrowser(Exception):
    pass


def open_browser(width=1280, height=1600):
    """A headless chromium under selenium, from Debian's packages (never a download)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise NoBrowser("selenium is missing: pip install 'workqueue[test]'") from None
    chromium = shutil.which("chromium") or CHROMIUM
    driver = shutil.which("chromedriver") or CHROMEDRIVER
    if not (pathlib.Path(chromium).exists() and pathlib.Path(driver).exists()):
        raise NoBrowser("chromium and chromium-driver are not installed: apt-get install chromium "
                        "chromium-driver (make test installs them when root)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def read_page(page, screenshot=None):
    """What the browser shows of ``page``: its visible text, the version columns of its runs
    table, the scenario names and the failure messages. Saves a screenshot when asked."""
    from selenium.webdriver.common.by import By
    browser = open_browser()
    try:
        browser.get(pathlib.Path(page).resolve().as_uri())
        seen = {
            "text": browser.find_element(By.TAG_NAME, "body").text,
            "versions": [e.get_attribute("data-version") for e in browser.find_elements(By.CSS_SELECTOR, "tr.run")],
            "scenarios": [e.get_attribute("data-name") for e in browser.find_elements(By.CSS_SELECTOR, ".scenario")],
            "features": [e.text for e in browser.find_elements(By.CSS_SELECTOR, "article.feature > h3")],
            "failures": [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".failure")],
            # the conformance suite's summaries: RabbitMQ version -> the implementations' columns
            "conformance": {
                t.get_attribute("data-version"): [h.text for h in t.find_elements(By.CSS_SELECTOR, "th")[1:]]
                for t in browser.find_elements(By.CSS_SELECTOR, "table.conformance-summary")},
            "title": browser.title,
        }
        if screenshot:
            pathlib.Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(screenshot))
        return seen
    finally:
        browser.quit()


def missing(seen, chapters, versions, implementations=()):
    """What a reader would not find: a feature, a scenario, a version, or an implementation's
    column in the conformance table of each version it has one for (one line each)."""
    from docs.model import all_scenarios
    out = [f"version {v} has no column" for v in versions if v not in seen["versions"]]
    if implementations and not seen["conformance"]:
        out.append("the page has no conformance table")
    for version, columns in seen["conformance"].items():
        out += [f"implementation {i} has no column in the conformance table of RabbitMQ {version}"
                for i in implementations if i not in columns]
    headings = " ".join(seen["features"])
    for chapter in chapters:
        for feature in chapter.features:
            if feature.name not in headings:
                out.append(f"feature {feature.name!r} ({feature.uri}) is not on the page")
    shown = set(seen["scenarios"])
    out += [f"scenario {s.name!r} ({f.uri}:{s.line}) is not on the page"
            for f, s in all_scenarios(chapters) if s.name not in shown]
    return out


def main(argv=None):
    from docs.__main__ import ROOT
    from docs.model import load_features
    p = argparse.ArgumentParser(prog="python -m docs.browser", description=__doc__.split("\n\n")[0])
    p.add_argument("page", type=pathlib.Path)
    p.add_argument("--versions", nargs="*", default=[], help="RabbitMQ versions that must have a column")
    p.add_argument("--implementations", nargs="*", default=[],
                   help="implementations that must have a column in each conformance table")
    p.add_argument("--screenshot", type=pathlib.Path, help="save a screenshot of the page's top here")
    args = p.parse_args(argv)
    if not args.page.is_file():
        p.error(f"no page at {args.page}: run `make docs` first")
    try:
        seen = read_page(args.page, args.screenshot)
    except NoBrowser as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    problems = missing(seen, load_features(ROOT / "features"), args.versions, args.implementations)
    for line in problems:
        print(f"{p.prog}: {line}", file=sys.stderr)
    if not problems:
        print(f"{args.page}: {len(seen['features'])} features, {len(seen['scenarios'])} scenarios, "
              f"versions {', '.join(seen['versions'])}; {len(seen['failures'])} failure(s) shown; conformance: "
              + ("; ".join(f"RabbitMQ {v}, {len(c)} implementations" for v, c in seen["conformance"].items())
                 or "none"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
