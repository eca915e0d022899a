"""Broker URLs: parsing into pika parameters, and never a password in what is printed."""

import pytest

from workqueue.errors import BadUrl
from workqueue.urls import describe, parameters_from_url, redact, scrub, secrets_of


def test_a_url_becomes_pika_parameters_with_its_heartbeat():
    params = parameters_from_url("amqp://u:p@h:5673/v", heartbeat=2)
    assert (params.host, params.port, params.virtual_host, params.heartbeat) == ("h", 5673, "v", 2)
    assert describe(params) == "u@h:5673/v"


@pytest.mark.parametrize("url, words", [
    ("", "empty"), ("http://h/", "amqp://"), ("amqp://u:p@/", "no host"), ("amqp://u:p@h:0/", "port 0"),
    ("amqp://u:p@h:99999/", "host or port"), ("amqp://u:p/w@h/", "an '@' after the host")])
def test_a_malformed_url_is_one_line_without_its_password(url, words):
    with pytest.raises(BadUrl) as caught:
        parameters_from_url(url)
    message = str(caught.value)
    assert words in message and "\n" not in message and ":p@" not in message and "p/w" not in message


@pytest.mark.parametrize("url, shown", [
    ("amqp://u:secret@h/", "amqp://u:***@h/"), ("amqp://u:se/c?r#e@t@h:1/v", "amqp://u:***@h:1/v"),
    ("amqp://u@h/", "amqp://u@h/"), ("no url at all", "no url at all")])
def test_redact_hides_whatever_lies_between_the_user_and_the_last_at(url, shown):
    assert redact(url) == shown


def test_scrub_replaces_a_password_as_typed_and_decoded_and_short_ones_only_alone():
    assert secrets_of("amqp://u:p%40ss@h/") == {"p%40ss", "p@ss"}
    assert scrub("bad p@ss and p%40ss", secrets_of("amqp://u:p%40ss@h/")) == "bad *** and ***"
    assert scrub("a x in max", {"x"}) == "a *** in max"
