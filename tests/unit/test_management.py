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


def test_an_amqp_1_0_consumer_gets_its_connection_from_the_connections_sessions():
    """RabbitMQ 4 lists an AMQP 1.0 consumer with no channel (so no connection): consumers()
    takes it from the sessions of the vhost's AMQP 1.0 connections (the shapes RabbitMQ 4.3.6
    answered here, cut to the fields read)."""
    import json
    amqp10 = "172.17.0.1:52108 -> 172.17.0.2:5672"
    answers = {
        "/api/consumers/v1": [
            {"queue": {"name": "task_queue"}, "consumer_tag": "ctag-1",
             "channel_details": {"connection_name": "127.0.0.1:4000 -> 127.0.0.1:5672", "name": "c (1)"}},
            {"queue": {"name": "task_queue"}, "consumer_tag": "0", "channel_details": {}}],
        "/api/vhosts/v1/connections": [
            {"name": "127.0.0.1:4000 -> 127.0.0.1:5672", "protocol": "AMQP 0-9-1"},
            {"name": amqp10, "protocol": "AMQP 1-0", "client_properties": {"connection_name": "w"}}],
        "/api/connections/172.17.0.1%3A52108%20-%3E%20172.17.0.2%3A5672/sessions": [
            {"outgoing_links": [{"queue_name": "task_queue", "source_address": "/queues/task_queue"}],
             "incoming_links": []}],
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answers.get(self.path)).encode() if self.path in answers else b""
            self.send_response(200 if self.path in answers else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        consumers = Management(f"http://127.0.0.1:{server.server_port}", "wq", "pw").consumers("v1")
    finally:
        server.shutdown()
    assert [(c["queue"], c["connection"], c["channel"]) for c in consumers] == [
        ("task_queue", "127.0.0.1:4000 -> 127.0.0.1:5672", "c (1)"), ("task_queue", amqp10, None)]
