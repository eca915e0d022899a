"""A small client of RabbitMQ's management HTTP API (the plugin rabbitmq_management)."""

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, QueueRefused

log = logging.getLogger(__name__)

DEFAULT_PORT = 15672


def management_url_for(amqp_url, port=DEFAULT_PORT):
    """http://host:15672 for the host of an AMQP URL (the plugin's default port)."""
    parts = urllib.parse.urlsplit(amqp_url)
    scheme = "https" if parts.scheme == "amqps" else "http"
    return f"{scheme}://{parts.hostname}:{port}"


#: How long a vhost's creation may take to be answered (see Management.create_vhost).
VHOST_SECONDS = 60.0


def _reason(exc, body):
    """The broker's reason for refusing a request (a 400's "reason": which setting it does not
    know), on one line, or nothing; never for a request that carries a password (a reason may
    quote the body)."""
    if isinstance(body, dict) and "password" in body:
        return ""
    try:
        reason = json.loads(exc.read() or b"{}").get("reason")
    except (ValueError, OSError, AttributeError):
        return ""
    return f": {' '.join(str(reason).split())[:300]}" if reason else ""


class Management:
    """GET/PUT/DELETE against the management API with basic auth; errors are WorkqueueErrors."""

    def __init__(self, base_url, username, password, timeout=10.0):
        if not base_url.startswith(("http://", "https://")):
            raise BadUrl(f"malformed management URL {base_url!r}: must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.timeout = timeout

    @classmethod
    def for_amqp_url(cls, amqp_url, management_url=None):
        """Credentials from the AMQP URL; address from management_url or the AMQP host:15672."""
        parts = urllib.parse.urlsplit(amqp_url)
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        return cls(management_url or management_url_for(amqp_url), user, password)

    def request(self, method, path, body=None, timeout=None):
        """``timeout``: seconds for this request (default: the client's)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Authorization": self._auth,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise AccessRefused(f"management API at {self.base_url} refused user "
                                    f"{self.username!r}: wrong user name or password") from None
            if exc.code == 404:
                raise QueueRefused(f"not found: {urllib.parse.unquote(path)}", 404) from None
            error = BrokerUnreachable(f"management API at {self.base_url}: HTTP {exc.code} for "
                                      f"{method} {urllib.parse.unquote(path)}{_reason(exc, body)}")
            error.status = exc.code
            raise error from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BrokerUnreachable(f"cannot reach the management API at {self.base_url}: {reason}") from None
        return json.loads(raw) if raw else None

    # -- queues ---------------------------------------------------------------------------
    def queues(self, vhost="/"):
        """[{'name', 'messages_ready', 'messages_unacknowledged', 'consumers'}, ...] by name.

        A number the API has not reported yet (just after a declaration or a restart it omits
        the statistics) is None: unknown, not 0."""
        rows = self.request("GET", f"/api/queues/{_q(vhost)}?columns={','.join(QUEUE_COLUMNS)}") or []
        return sorted((queue_row(row) for row in rows), key=lambda r: r["name"])

    def queue(self, vhost, queue):
        """Everything the API says of one queue (type, durable, leader or node, members...)."""
        return self.request("GET", f"/api/queues/{_q(vhost)}/{_q(queue)}")

    def purge(self, vhost, queue):
        self.request("DELETE", f"/api/queues/{_q(vhost)}/{_q(queue)}/contents")

    def delete_queue(self, vhost, queue):
        self.request("DELETE", f"/api/queues/{_q(vhost)}/{_q(queue)}")

    # -- connections ----------------------------------------------------------------------
    def connections(self, vhost=None):
        """[{'name', 'node', 'connection_name', 'heartbeat', 'user', 'state'}, ...]: each client
        connection (of ``vhost``, or all), the node it is on, the name the client gave it
        (client property ``connection_name``, or None), its negotiated heartbeat in seconds and
        its state ("running", "blocked" by a resource alarm..., None while unreported)."""
        path = f"/api/vhosts/{_q(vhost)}/connections" if vhost else "/api/connections"
        rows = self.request("GET", path) or []
        return [{"name": r.get("name"), "node": r.get("node"), "user": r.get("user"), "heartbeat": r.get("timeout"),
                 "connection_name": (r.get("client_properties") or {}).get("connection_name"),
                 "state": r.get("state"), "protocol": r.get("protocol")} for r in rows]

    def consumers(self, vhost):
        """[{'queue', 'connection', 'channel', 'tag'}, ...]: each consumer of ``vhost``, the queue
        it consumes from, the name of its connection (as ``connections`` gives it), its channel's
        name (the connection's and the channel's number) and its consumer tag.

        RabbitMQ 4 lists an AMQP 1.0 consumer (a receiving link) with no channel, so without its
        connection: that is taken from the sessions of the vhost's AMQP 1.0 connections, whose
        links name their queue (each such consumer gets the connection of one link on its queue;
        the channel is then None)."""
        rows = self.request("GET", f"/api/consumers/{_q(vhost)}") or []
        out = [{"queue": (r.get("queue") or {}).get("name"),
                "connection": (r.get("channel_details") or {}).get("connection_name"),
                "channel": (r.get("channel_details") or {}).get("name"),
                "tag": r.get("consumer_tag")} for r in rows]
        if any(c["connection"] is None for c in out):
            links = self._amqp10_links(vhost)
            for consumer in out:
                if consumer["connection"] is None and links.get(consumer["queue"]):
                    consumer["connection"] = links[consumer["queue"]].pop(0)
        return out

    def _amqp10_links(self, vhost):
        """{queue: [the connection of each AMQP 1.0 link that consumes from it]} in ``vhost``."""
        links: dict[str, list[str]] = {}
        for connection in self.connections(vhost):
            if connection["protocol"] != "AMQP 1-0":
                continue
            try:
                sessions = self.request("GET", f"/api/connections/{_q(connection['name'])}/sessions") or []
            except QueueRefused:                 # closed since it was listed (404)
                continue
            for session in sessions:
                for link in session.get("outgoing_links") or []:
                    links.setdefault(link.get("queue_name"), []).append(connection["name"])
        return links

    def close_connection(self, name):
        """Close a client connection as an operator would (the client sees 320 CONNECTION_FORCED)."""
        self.request("DELETE", f"/api/connections/{_q(name)}")

    # -- vhosts and users -----------------------------------------------------------------
    def create_vhost(self, vhost, user=None, default_queue_type=None):
        """Create ``vhost`` and give ``user`` (default: ours) full permissions on it; its queues
        declared without a type are of ``default_queue_type`` when one is given (RabbitMQ 3.11+
        reads ``default_queue_type``, 3.10 and later ``defaultqueuetype``: both are sent; a vhost
        that exists keeps its type).

        The broker answers once the vhost runs on every node of its cluster; on a 3.10.8 cluster
        that had just formed, that once took over 10 s, and once was an HTTP 500 (CI on a clean
        clone, 2026-12-02): this request may take a minute, and a 500 is asked again within it."""
        deadline = time.monotonic() + VHOST_SECONDS
        delay = 0.5
        while True:
            try:
                body = {"default_queue_type": default_queue_type,
                        "defaultqueuetype": default_queue_type} if default_queue_type else {}
                self.request("PUT", f"/api/vhosts/{_q(vhost)}", body, timeout=max(self.timeout, VHOST_SECONDS))
                break
            except BrokerUnreachable as exc:
                # 500: a node of a cluster that had just formed could not start the vhost yet
                # (CI on a clean clone, 3.10.8, 2026-12-02). The PUT may be made again.
                if getattr(exc, "status", None) != 500 or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)              # back-off between attempts, not a synchronisation
                delay = min(2 * delay, 5.0)
        self.grant(vhost, user or self.username)

    def set_policy(self, vhost, name, pattern, definition, apply_to="queues"):
        """Policy ``name`` on ``vhost``: ``definition`` for the queues whose names match
        ``pattern``."""
        self.request("PUT", f"/api/policies/{_q(vhost)}/{_q(name)}",
                     {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": 0})

    def grant(self, vhost, user):
        """Full permissions for ``user`` on ``vhost``."""
        self.request("PUT", f"/api/permissions/{_q(vhost)}/{_q(user)}",
                     {"configure": ".*", "write": ".*", "read": ".*"})

    def create_user(self, user, password, tags="administrator"):
        self.request("PUT", f"/api/users/{_q(user)}", {"password": password, "tags": tags})

    def delete_user(self, user):
        self.request("DELETE", f"/api/users/{_q(user)}")

    def delete_vhost(self, vhost):
        self.request("DELETE", f"/api/vhosts/{_q(vhost)}")

    def overview(self):
        return self.request("GET", "/api/overview")


QUEUE_COLUMNS = ("name", "messages_ready", "messages_unacknowledged", "consumers")


def queue_row(row):
    """One queue's columns from an API row; a statistic not (yet) in the row is None."""
    return {c: row.get(c) for c in QUEUE_COLUMNS}


def _q(segment):
    return urllib.parse.quote(segment, safe="")
