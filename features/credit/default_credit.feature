@dispatch
Feature: A worker at its client's default credit
  The tutorial's workers ask for one task at a time: a prefetch of 1 in AMQP 0-9-1, a link credit
  of 1 in AMQP 1.0 (rabbitmq-tutorials' AMQP 1.0 workers call initialCredits(1)), so that a worker
  busy with a heavy task is passed over (fair_dispatch.feature). A worker that leaves the credit
  to its client gets the client's default: RabbitMQ's AMQP 1.0 client for Java grants 100, the
  one for Python 10 (its message handler keeps the credit at 10 whatever it is given). The
  contract asks for the default by WORKER_CLIENT_PREFETCH. An AMQP 0-9-1 client has no default
  credit (without basic.qos there is no limit: fair_dispatch.feature's contrast), so the rule is
  for AMQP 1.0 workers; the project's worker is an AMQP 0-9-1 one, and the chapter runs in the
  conformance suite only.

  @conformance @needs_client_prefetch
  Rule: At its client's default credit, a busy worker is passed over as at a credit of 1

    Scenario: Light tasks go to the free worker, each worker at its client's default credit
      Given workers "alice" and "bob" are waiting for tasks, at their client's default credit
      When a heavy task is sent, then 5 light tasks
      Then the worker that took the heavy task does no light task
      And the other worker does all 5 light tasks
