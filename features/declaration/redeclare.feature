@declaration
Feature: Declaring queues
  Declaring a queue is idempotent only with the same properties. The tutorial's first step
  made a non-durable queue "hello"; asking for a durable "hello" afterwards is refused, and the
  tutorial's answer is a new queue, "task_queue". The refusal names the option that matches the
  queue as it exists.

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

    @rabbitmq4 @broker_control
    Scenario: A broker that denies the deprecated feature refuses a non-durable "hello"
      Given a broker configured not to permit transient non-exclusive queues
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer fails with one line saying "541 INTERNAL_ERROR" and "transient_nonexcl_queues"

    @rabbitmq4
    Scenario: By default RabbitMQ 4 still permits a non-durable "hello"
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer says " [x] Sent 'Hello World!'"

    @rabbitmq3
    Scenario: RabbitMQ 3 permits a non-durable "hello"
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer says " [x] Sent 'Hello World!'"
