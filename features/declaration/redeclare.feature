@declaration
Feature: Declaring queues
  Declaring a queue is idempotent only with the same properties. The tutorial's first step
  made a non-durable queue "hello"; asking for a durable "hello" afterwards is refused, and the
  tutorial's answer is a new queue, "task_queue". The refusal names the option that matches the
  queue as it exists. This is the tutorial's story as it was told until 2026: classic queues
  ("as a durable queue" is a classic durable one); tutorial_today.feature tells today's.

  Rule: An existing queue is not redeclared with other properties

    Scenario: A non-durable "hello" cannot become durable
      Given a non-durable queue "hello" holding the task "Hello World!"
      When the producer sends "First message." to "hello" as a durable queue
      Then the producer fails with one line saying "406 PRECONDITION_FAILED" and "use --transient"
      And the queue "hello" still holds 1 task and is not durable

    Scenario: A new durable queue works instead
      Given a non-durable queue "hello" holding the task "Hello World!"
      When the producer sends "First message." to "task_queue" as a durable queue
      Then the producer says " [x] Sent 'First message.'"
      And the queue "task_queue" holds 1 task
      And the queue "hello" still holds 1 task and is not durable

    @quorum
    Scenario: A classic queue cannot become a quorum queue
      Given a durable queue "task_queue" holding the task "First message."
      When the producer sends "Second message." to "task_queue" as a quorum queue
      Then the producer fails with one line saying "406 PRECONDITION_FAILED" and "use --queue-type classic"
      And the queue "task_queue" holds 1 task

  Rule: Transient non-exclusive queues are a deprecated feature of RabbitMQ 4
    RabbitMQ 4.3.0's release notes say such queues are refused by default from 4.3 on
    (rabbitmq-server#15459); 4.3.6 as Debian packages it still permits them by default (measured
    2026-12-02: its deprecation phase "permitted_by_default", where global_qos and
    queue_master_locator are "denied_by_default").

    @rabbitmq4 @broker_control
    Scenario: A broker that denies the deprecated feature refuses a non-durable "hello"
      Given a broker configured not to permit transient non-exclusive queues
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer fails with one line saying "541 INTERNAL_ERROR" and "transient_nonexcl_queues"

    @rabbitmq4
    Scenario: By default RabbitMQ 4 still permits a non-durable "hello"
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer says " [x] Sent 'Hello World!'"
      And the queue "hello" holds 1 task and is not durable
      And the broker lists the deprecated feature "transient_nonexcl_queues" as permitted by default

    @rabbitmq3
    Scenario: RabbitMQ 3 permits a non-durable "hello"
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer says " [x] Sent 'Hello World!'"
      And the queue "hello" holds 1 task and is not durable
