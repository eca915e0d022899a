@production @own_broker
Feature: A task longer than the broker's consumer timeout
  RabbitMQ gives a worker a limited time to acknowledge a task it holds: consumer_timeout, 30
  minutes by default. Past it the broker takes the task back and gives it to another worker:
  RabbitMQ 3.10 and 4.0 close the worker's channel, 4.3 cancels its consumer (and, on a classic
  queue, has no consumer timeout at all). The worker finishes the task it is running (that
  acknowledgment is lost: the task is done twice) and consumes again: it never silently stops
  (the project's worker also says so in its log). These scenarios run on a broker of their own, with a consumer timeout of 5 seconds
  checked every half second (RabbitMQ checks once a minute by default).

  Background:
    Given a broker whose consumer timeout is 5 seconds

  @conformance
  Rule: A task held past the consumer timeout goes to another worker, and its worker consumes again

    Scenario Outline: A task outlasts the consumer timeout of a <type> queue
      Given a <type> task queue
      And worker "alice" is working on a task of 30 seconds
      And worker "bob" is waiting for tasks
      Then "bob" is given that task, flagged as redelivered
      And "alice" consumes again, and keeps running

      Examples:
        | type   |
        | quorum |

      # RabbitMQ 4.3 enforces the consumer timeout on quorum queues only (features/defects.toml).
      @defect_classic_consumer_timeout_gone
      Examples:
        | type    |
        | classic |

  @contrast @conformance
  Rule: A task acknowledged within the consumer timeout stays with its worker

    Scenario: A task shorter than the consumer timeout is done once, on one subscription
      Given worker "alice" is working on a task of 2 seconds
      Then "alice" does that task once, and keeps its one subscription

  Rule: A queue's own consumer timeout, set by a policy, replaces the broker's
    An operator gives one queue a longer consumer timeout than the broker's with a policy
    (consumer-timeout, in milliseconds): RabbitMQ 4.0 reads it for any queue type (the smaller of
    the policy and the queue's x-consumer-timeout argument), 4.3 for quorum queues, before the
    broker's consumer_timeout. RabbitMQ 3.10 knows no such policy key and refuses the policy
    (features/defects.toml queue_consumer_timeout_unknown).

    @defect_queue_consumer_timeout_unknown
    Scenario: A quorum queue whose policy allows 60 seconds keeps a 10 second task with its worker
      Given a quorum task queue whose policy sets a consumer timeout of 60 seconds
      And worker "alice" is working on a task of 10 seconds
      Then "alice" does that task once, and keeps its one subscription

