"""The node cluster's private network (workqueue.testing.netns): a cut drops the link and keeps
the address, a heal brings traffic back on the same connection, and nothing is left behind."""

import os
import socket
import subprocess
import sys

import pytest

from workqueue.testing import netns

pytestmark = pytest.mark.skipif(netns.unavailable() is not None, reason=f"{netns.unavailable()}")

#: A one-connection echo server run inside a namespace: it answers each line it receives.
ECHO = """
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 5555)); s.listen(); print("ready", flush=True)
c, _ = s.accept()
for line in c.makefile("rb"):
    c.sendall(line)
"""


def test_a_cut_drops_the_link_keeps_the_address_and_a_heal_resumes_the_connection():
    with netns.Lan(2) as lan:
        address = lan.address(2)
        assert lan.current_address(2) == address and address.startswith("198.1")
        server = subprocess.Popen([*lan.exec_prefix(2), sys.executable, "-c", ECHO, address],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
            with socket.create_connection((address, 5555), timeout=5) as conn:
                conn.sendall(b"before\n")
                assert conn.recv(100) == b"before\n"
                lan.cut(2)
                assert lan.is_cut(2) and lan.current_address(2) == address
                conn.settimeout(1.5)
                conn.sendall(b"during\n")
                with pytest.raises(TimeoutError):      # dropped, not refused: nothing comes back
                    conn.recv(100)
                lan.heal(2)
                assert not lan.is_cut(2) and lan.current_address(2) == address
                conn.settimeout(30)                    # TCP retransmits what it sent during the cut
                got = b""
                while len(got) < len(b"during\n"):
                    got += conn.recv(100)
                assert got == b"during\n"
        finally:
            server.kill()
            server.wait()
    assert lan.leftovers() == []


def test_namespaces_of_an_owner_that_is_gone_are_reaped():
    made = "from workqueue.testing import netns; print(netns.Lan(1).create().namespace(1))"
    child = subprocess.run([sys.executable, "-c", made], capture_output=True, text=True, check=True)
    orphan = child.stdout.strip()
    assert orphan in netns.namespaces()
    assert orphan in netns.reap_orphans()
    assert orphan not in netns.namespaces()
    assert not os.path.exists(f"/sys/class/net/wq{netns.NAME.match(orphan)['tag']}b")
