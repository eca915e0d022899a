"""No password in any output, whatever characters it holds: every CLI, every URL a user can type.

Each URL below carries a password; each command-line tool is run with it (with -vv, so that
log lines are checked too) and must exit with the documented code and print neither the
password as typed nor as decoded, nor any piece of it that a mis-split URL would show.
Nothing listens on 127.0.0.1:1 (AMQP, and the status command's management API), so no broker
is needed and none of the machine's is asked: these are the tools' own messages.
"""

import concurrent.futures
import subprocess
import sys

import pytest

from workqueue.testing.processes import child_env
from workqueue.urls import redact, scrub, secrets_of

#: (URL, its password as the user meant it, expected exit code: 2 malformed, 3 unreachable)
URLS = [
    ("amqp://guest:p/w#d-Secret1@127.0.0.1:1/%2F", "p/w#d-Secret1", 2),     # unencoded / and #
    ("amqp://guest:pw?Secret2@127.0.0.1:1/%2F", "pw?Secret2", 2),           # unencoded ?
    ("amqp://guest:pw@Secret3@127.0.0.1:1/%2F", "pw@Secret3", 3),           # unencoded @
    ("amqp://guest:pw:Secret4@127.0.0.1:1/%2F", "pw:Secret4", 3),           # unencoded :
    ("amqp://guest:pass word Secret5@127.0.0.1:1/%2F", "pass word Secret5", 3),   # spaces
    ("amqp://guest:p%2Fw%23d%40Secret6@127.0.0.1:1/%2F", "p/w#d@Secret6", 3),     # percent-encoded
    ("amqp://guest:Secret7pw@/%2F", "Secret7pw", 2),                        # no host
    ("amqp://guest:Secret8pw@127.0.0.1:notaport/%2F", "Secret8pw", 2),      # bad port
    ("amqp://guest:Secret9pw@127.0.0.1:99999/%2F", "Secret9pw", 2),         # port out of range
    ("amqp://guest:Secret10pw@[::1/%2F", "Secret10pw", 2),                  # bad IPv6
    ("amqp://guest:Secret11pw@[::1]:notaport/%2F", "Secret11pw", 2),        # IPv6, bad port
    ("http://guest:Secret12pw@127.0.0.1:1/%2F", "Secret12pw", 2),           # wrong scheme
    ("guest:Secret13pw@127.0.0.1:1", "Secret13pw", 2),                      # no scheme
    ("amqp://guest:Secret14pw@127.0.0.1:1/%2F?heartbeat=lots", "Secret14pw", 2),  # bad option
    ("amqp://:Secret15pw@127.0.0.1:1/%2F", "Secret15pw", 3),                # no user name
    ("amqp://guest:guest@127.0.0.1:1/%2F", "guest", 3),                     # user name == password
]

CLIS = {
    "new_task": ["First message."],
    "worker": ["--no-reconnect"],
    # The management API on port 1 too: without it, status asks http://<host>:15672, where a
    # broker of the machine's may answer (a stock one in CI's url stage: exit 4, not 3).
    "status": ["--management-url", "http://127.0.0.1:1"],
}


def pieces(password):
    """The password and the fragments a mis-split URL would print (split at / ? # @ : and spaces)."""
    import re
    out = {password}
    out.update(p for p in re.split(r"[/?#@: ]", password) if len(p) >= 6)
    return out


def run(module, url, extra):
    return subprocess.run([sys.executable, "-m", f"workqueue.{module}", "-vv", "--url", url, *extra],
                          env=child_env({"WORKQUEUE_URL": ""}), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("module", sorted(CLIS))
def test_no_cli_prints_a_password_whatever_the_url(module):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda row: run(module, row[0], CLIS[module]), URLS))
    problems = []
    for (url, password, code), result in zip(URLS, runs):
        printed = result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if ": error: " in line]
        if result.returncode != code:
            problems.append(f"{redact(url)}: exit {result.returncode}, expected {code}: "
                            f"{errors or result.stderr[-300:]}")
        if len(errors) != 1 or "Traceback" in printed:
            problems.append(f"{redact(url)}: expected one error line and no traceback, got {errors}")
        leaked = [p for p in pieces(password) if p != "guest" and p in printed]
        if leaked or (password == "guest" and "guest:guest" in printed):
            problems.append(f"{redact(url)}: printed the password (or a piece of it)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("url, password, _code", URLS)
def test_redact_hides_the_whole_password(url, password, _code):
    shown = redact(url)
    assert "***" in shown
    assert not any(p in shown for p in pieces(password) if p != "guest"), shown
    assert password in secrets_of(url) or url.split("@")[0].endswith(password.split("@")[0])


def test_scrub_hides_secrets_and_leaves_short_ones_inside_words_alone():
    assert scrub("refused pw:Secret4 at host", {"pw:Secret4"}) == "refused *** at host"
    assert scrub("a cannot reach a", {"a"}) == "*** cannot reach ***"
