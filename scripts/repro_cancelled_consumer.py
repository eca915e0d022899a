"""RabbitMQ 4.3: a consumer cancelled for its consumer timeout is still given tasks.

A reproduction with pika alone (no code of this project), for the finding in docs/rabbitmq.md:

    python scripts/repro_cancelled_consumer.py AMQP_URL MANAGEMENT_URL USER PASSWORD

It declares a quorum queue "q" on the vhost "/", publishes one task, consumes it with the consumer
argument x-consumer-timeout = 2000 ms and does not acknowledge it. RabbitMQ 4.3.6 (measured
2026-12-06) sends basic.cancel at 2 s, and pika drops the consumer; the management API still
lists the consumer's tag. After the task is acknowledged, a second task is delivered to that tag:
pika's BlockingConnection fails with KeyError(tag). Prints what it saw, one line each; exits 0.
"""

import base64
import json
import sys
import time
import urllib.request

import pika


def main(argv=None):
    amqp, http, user, password = (argv or sys.argv[1:])[:4]
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def api(path):
        request = urllib.request.Request(http.rstrip("/") + path, headers={"Authorization": auth})
        return json.loads(urllib.request.urlopen(request, timeout=10).read())

    def run_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            connection.process_data_events(time_limit=0.2)

    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    channel = connection.channel()
    channel.queue_declare("q", durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    channel.basic_publish("", "q", b"first")
    got, cancelled = [], []
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    channel.basic_consume("q", lambda _ch, method, _p, body: got.append((method.delivery_tag, body)),
                          arguments={"x-consumer-timeout": 2000})
    run_for(6)
    print("received:", got, "cancelled by the broker:", cancelled, "pika's consumers:", list(channel.consumer_tags))
    print("the broker lists consumers:", [(c["consumer_tag"], c["queue"]["name"]) for c in api("/api/consumers/%2F")])
    channel.basic_ack(got[0][0])
    channel.basic_publish("", "q", b"second")
    try:
        run_for(4)
        print("after the ack, received:", got[1:])
    except Exception as exc:                    # what pika does with a delivery to a cancelled tag
        print("after the ack, pika failed:", type(exc).__name__, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
