"""The management client's vhost creation against a local HTTP stub (not a broker: only the
client's handling of the answers is under test): a 500 is asked again, other errors are not."""

import http.server
import threading

import pytest

from workqueue.errors import BrokerUnreachable
from workqueue.management import Management


def stub(answers):
    """A server on 127.0.0.1 answering each PUT of a vhost with the next of ``answers`` (then 204),
    and any other request with 204; returns (server, the paths it was asked)."""
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            asked.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = answers.pop(0) if self.path.startswith("/api/vhosts/") and answers else 204
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


def test_a_vhost_answered_with_500_is_asked_again_until_created():
    server, asked = stub([500, 500])
    try:
        Management(f"http://127.0.0.1:{server.server_port}", "wq", "pw").create_vhost("v1")
    finally:
        server.shutdown()
    assert asked == ["/api/vhosts/v1"] * 3 + ["/api/permissions/v1/wq"]


def test_a_vhost_refused_otherwise_is_one_error_at_once():
    server, asked = stub([503])
    try:
        with pytest.raises(BrokerUnreachable) as error:
            Management(f"http://127.0.0.1:{server.server_port}", "wq", "pw").create_vhost("v1")
    finally:
        server.shutdown()
    assert "HTTP 503 for PUT /api/vhosts/v1" in str(error.value) and asked == ["/api/vhosts/v1"]
