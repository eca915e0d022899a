"""Operations: the status command against rabbitmqctl."""

from pytest_bdd import scenarios

scenarios("operations")
