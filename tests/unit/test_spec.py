"""QueueSpec, with no broker: the x-arguments of a declaration and what is refused at once."""

import pytest

from workqueue import QueueSpec


def test_a_length_limit_and_its_overflow_are_declared_as_x_arguments():
    spec = QueueSpec(max_length=3, overflow="reject-publish")
    assert spec.arguments == {"x-max-length": 3, "x-overflow": "reject-publish"}
    assert spec.refuses_when_full
    assert QueueSpec(max_length=3).arguments == {"x-max-length": 3} and not QueueSpec(max_length=3).refuses_when_full
    assert not QueueSpec(max_length=3, overflow="drop-head").refuses_when_full
    assert QueueSpec().arguments == {}


def test_a_queue_consumer_timeout_is_declared_in_milliseconds():
    assert QueueSpec(queue_type="quorum", consumer_timeout=60).arguments == {
        "x-queue-type": "quorum", "x-consumer-timeout": 60_000}


@pytest.mark.parametrize("kwargs, says", [
    ({"overflow": "explode"}, "overflow must be one of drop-head, reject-publish, reject-publish-dlx"),
    ({"max_length": -1}, "cannot be negative"),
    ({"consumer_timeout": -1}, "a consumer timeout cannot be negative"),
    ({"queue_type": "stream"}, "queue type must be one of classic, quorum"),
])
def test_a_bad_queue_is_refused_in_one_line(kwargs, says):
    with pytest.raises(ValueError) as error:
        QueueSpec(**kwargs)
    assert says in str(error.value)
