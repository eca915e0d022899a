@production @broker_settings
Feature: A task longer than the broker's consumer timeout
  RabbitMQ gives a worker a limited time to acknowledge a task it holds: consumer_timeout, 30
  minutes by default. Past it the broker takes the task back and gives it to another worker:
  RabbitMQ 3.10 and 4.0 close the worker's channel, 4.3 cancels its consumer (and, on a classic
  queue, has no consumer timeout at all). The worker finishes the task it is running (that
  acknowledgment is lost: the task is done twice) and consumes again: it never silently stops
  (the project's worker also says so in its log). These scenarios set their broker's consumer timeout
  to 5 seconds, checked every half second (RabbitMQ checks once a minute by default), while they run.

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

  Rule: A consumer the broker cancelled for its consumer timeout is gone from the queue
    A worker that finishes its task after the timeout acknowledges it on the channel it has and
    consumes again. RabbitMQ 4.3 cancels the consumer (basic.cancel) but keeps it until the
    client answers with basic.cancel-ok, which clients do not send to a cancel from the broker;
    the late acknowledgment makes it a consumer again, the task taken back goes to it, the
    worker (which dropped it) leaves it unacknowledged, and it comes back one more consumer
    timeout later; the cancelled consumer stays on the queue (rabbit_channel.erl, v4.3.5;
    features/defects.toml cancelled_consumer_given_tasks). Measured with a worker written here
    in a few lines of pika.

    @defect_cancelled_consumer_given_tasks
    Scenario: A worker that consumes again after its consumer timeout is given the next tasks on its new consumer
      Given a quorum task queue
      And a worker that held a task past the consumer timeout, finished it once the broker took it back, and consumes again
      When 4 tasks are sent
      Then the worker is given the 4 tasks on its new consumer, none on the consumer the broker took the task from, and the task queue has that one consumer

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


  Rule: A queue's own consumer timeout, in its declaration, replaces the broker's
    The queue argument x-consumer-timeout (milliseconds): RabbitMQ 4.0 reads it for any queue
    type, 4.3 for quorum queues, and from 4.3.2 refuses it for a classic queue (features/defects.toml
    classic_consumer_timeout_refused); 3.10 ignores it (declared_consumer_timeout_ignored).

    Scenario Outline: A <type> queue declared with a consumer timeout of 60 seconds keeps a 10 second task with its worker
      Given a <type> task queue declared with a consumer timeout of 60 seconds
      And worker "alice" is working on a task of 10 seconds
      Then "alice" does that task once, and keeps its one subscription

      @defect_declared_consumer_timeout_ignored
      Examples:
        | type   |
        | quorum |

      @defect_declared_consumer_timeout_ignored @defect_classic_consumer_timeout_refused
      Examples:
        | type    |
        | classic |

  Rule: A worker's own consumer timeout, asked for as it consumes, replaces the broker's
    The consumer argument x-consumer-timeout (milliseconds), new in RabbitMQ 4.3 for quorum
    queues; 3.10 and 4.0 ignore it (features/defects.toml consumer_argument_timeout_ignored).

    @defect_consumer_argument_timeout_ignored
    Scenario: A worker asking for a consumer timeout of 60 seconds keeps a 10 second task on a quorum queue
      Given a quorum task queue
      And worker "alice", asking for a consumer timeout of 60 seconds, is working on a task of 10 seconds
      Then "alice" does that task once, and keeps its one subscription

  Rule: A consumer timeout set to undefined is no consumer timeout
    RabbitMQ's documented way to switch the consumer timeout off, here at runtime as its
    documentation shows (rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout,
    undefined).'). RabbitMQ 4.3.0 to 4.3.2 refuse the consumer of a quorum queue then (a failed
    assertion); from 4.3.3 a queue reads it as 24 hours, and says so in its log
    (features/defects.toml consumer_timeout_undefined_is_a_day).

    @defect_consumer_timeout_undefined_is_a_day
    Scenario: A broker whose consumer timeout is undefined keeps a 10 second task with its worker, and no timeout
      Given the broker's consumer timeout is set to undefined
      And a quorum task queue
      And worker "alice" is working on a task of 10 seconds
      Then "alice" does that task once, and keeps its one subscription
      And the broker has logged no consumer timeout it put in force instead
