@declaration
Feature: Declaring queues
  Declaring a queue is idempotent only with the same properties. The tutorial's first step
  made a non-durable queue "hello"; asking for a durable "hello" afterwards is refused, and the
  tutorial's answer is a new queue, "task_queue". The refusal names the option that matches the
  queue as it exists. This is the tutorial's story as it was told until 2026: classic queues
  ("as a durable queue" is a classic durable one); tutorial_today.feature tells today's.

  Rule: An existing queue is not redeclared with other properties

    @defect_transient_nonexcl_queues_denied
    Scenario: A non-durable "hello" cannot become durable
      Given a non-durable queue "hello" holding the task "Hello World!"
      When the producer sends "First message." to "hello" as a durable queue
      Then the producer fails with one line saying "406 PRECONDITION_FAILED" and "use --transient"
      And the queue "hello" still holds 1 task and is not durable

    @defect_transient_nonexcl_queues_denied
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

  Rule: A non-durable, non-exclusive queue is a deprecated feature: RabbitMQ 4.3 refuses it by default
    Such queues are the deprecated feature transient_nonexcl_queues of RabbitMQ 4. Upstream's
    4.3.0 denies it by default (rabbitmq-server#15459; rabbit_amqqueue.erl says denied_by_default
    from v4.3.0 on): the tutorial's non-durable "hello" is refused with 541 INTERNAL_ERROR, and
    the scenarios above that declare it are strict expected failures on 4.3
    (features/defects.toml). Debian's 4.3 package permits it again
    (do-not-deprecate-transient_nonexcl_queues.patch, since 4.3.0-3, Debian bug #1138887): this
    specification runs it with upstream's default restored
    (deprecated_features.permit.transient_nonexcl_queues = false), so that the 4.3 column says
    what RabbitMQ does; WORKQUEUE_RABBITMQ_DEFAULTS=debian runs the package as Debian ships it.

    @rabbitmq4 @broker_control
    Scenario: A broker that denies the deprecated feature refuses a non-durable "hello"
      Given a broker configured not to permit transient non-exclusive queues
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer fails with one line saying "541 INTERNAL_ERROR" and "transient_nonexcl_queues"

    @defect_transient_nonexcl_queues_denied
    Scenario: By default a non-durable "hello" is declared
      When the producer sends "Hello World!" to "hello" as a non-durable queue
      Then the producer says " [x] Sent 'Hello World!'"
      And the queue "hello" holds 1 task and is not durable
