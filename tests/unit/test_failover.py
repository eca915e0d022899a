"""Which broker a client tries, in what order, and how long it waits: workqueue.failover."""

import pytest

from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, ConnectionLost
from workqueue.failover import Backoff, Failover


def test_the_first_broker_that_answers_is_used_from_the_current_one_round():
    tried = []

    def attempt(params):
        tried.append(params)
        if params != "n3":
            raise BrokerUnreachable(f"{params} down")
        return params

    failover = Failover(["n1", "n2", "n3"])
    failover.skip()                                      # n2 first
    assert failover.first_answering(attempt) == "n3" and tried == ["n2", "n3"]
    assert failover.params == "n3"


def test_when_none_answers_the_last_ones_error_is_raised():
    def attempt(params):
        raise BrokerUnreachable(f"{params} down")
    with pytest.raises(BrokerUnreachable, match="n2 down"):
        Failover(["n1", "n2"]).first_answering(attempt)


@pytest.mark.parametrize("error", [AccessRefused("no"), ConnectionLost("lost")])
def test_a_refusal_or_a_lost_connection_is_raised_at_once(error):
    tried = []

    def attempt(params):
        tried.append(params)
        raise error
    with pytest.raises(type(error)):
        Failover(["n1", "n2"]).first_answering(attempt)
    assert tried == ["n1"]


def test_skip_goes_round_and_one_broker_stays_itself():
    failover = Failover(["n1", "n2"])
    failover.skip()
    failover.skip()
    assert failover.params == "n1"
    single = Failover("only")
    single.skip()
    assert single.params == "only"


def test_no_broker_at_all_is_bad_usage():
    with pytest.raises(BadUrl):
        Failover([])


def test_backoff_doubles_up_to_its_maximum_and_starts_again_after_reset():
    backoff = Backoff(0.2, 1.0)
    assert [backoff.next() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.2
