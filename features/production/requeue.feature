@production
Feature: A task handed back to its queue
  A worker that cannot do a task hands it back (basic.reject or basic.nack, with requeue), and
  the queue gives it out again at once: a task that always fails goes round in a tight loop. A
  quorum queue counts such returns against its delivery limit (none by default on RabbitMQ
  3.10, 20 from 4.0; an operator sets it on a queue in use with a policy) and drops the task
  past it. RabbitMQ 4.3 counts only the returns that say the delivery failed: basic.reject does,
  a basic.nack is an explicit return it allows without limit (features/defects.toml
  nack_requeue_unlimited). 4.3 can also hold a returned task back before giving it out again
  (delayed retry). The worker here is a few lines of pika that hands a task back a bounded number
  of times, then keeps it; the queues are quorum queues.

  Rule: A delivery limit set by a policy stops a task handed back again and again

    Scenario Outline: A quorum queue whose policy sets a delivery limit of 2, a task handed back with <method>
      Given a quorum task queue whose policy sets a delivery limit of 2
      And a worker that hands back every task with <method>, 10 times at most
      When the task "poison" is sent
      Then the worker is given "poison" 3 times, and then the task queue is empty

      Examples:
        | method       |
        | basic.reject |

      @defect_nack_requeue_unlimited
      Examples:
        | method     |
        | basic.nack |

  @contrast
  Rule: Without such a policy, the task goes round until the worker keeps it

    Scenario: A quorum queue without a policy, a task handed back with basic.reject
      Given a quorum task queue
      And a worker that hands back every task with basic.reject, 10 times at most
      When the task "poison" is sent
      Then the worker is given "poison" 11 times, and then the task queue is empty

  Rule: Delayed retry holds a task handed back before it is given out again

    @defect_delayed_retry_unknown
    Scenario: A quorum queue whose policy holds a task handed back for 1 second
      Given a quorum task queue whose policy holds a task handed back for 1 second before it is given out again
      And a worker that hands back every task with basic.nack, 3 times at most
      When the task "poison" is sent
      Then the worker is given "poison" 4 times, each at least 1 second after the last

  @contrast
  Rule: Without delayed retry, a task handed back is given out again at once

    Scenario: A quorum queue without delayed retry, a task handed back with basic.nack
      Given a quorum task queue
      And a worker that hands back every task with basic.nack, 3 times at most
      When the task "poison" is sent
      Then the worker is given "poison" 4 times, each less than 1 second after the last
