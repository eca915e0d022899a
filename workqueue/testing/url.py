"""Backend ``url``: a broker the user already runs, given by an AMQP URL.

The URL's user needs the management plugin's administrator tag (vhosts are created per
scenario). Nothing here can stop, crash or restart that broker: scenarios that need to are
skipped on this backend, with a reason naming the option that enables them.
"""

import urllib.parse

from workqueue.connection import parameters_from_url
from workqueue.testing.base import Broker, BrokerError


class UrlBroker(Broker):
    kind = "url"
    controllable = False

    def __init__(self, url, management_url=None, **kwargs):
        params = parameters_from_url(url)
        parts = urllib.parse.urlsplit(url)
        super().__init__(username=params.credentials.username, password=params.credentials.password,
                         port=params.port, management_port=None, **kwargs)
        self.host = params.host
        self._management_url = management_url or f"http://{self.host}:15672"
        self.scheme = parts.scheme

    @property
    def management_url(self):
        return self._management_url

    def _start(self):
        if not self.is_ready():
            raise BrokerError(f"no broker answered at {self.host}:{self.port} (AMQP) and "
                              f"{self._management_url} (management API)")

    def close(self):
        pass
