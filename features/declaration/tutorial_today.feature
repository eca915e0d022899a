@declaration
Feature: The tutorial's task_queue, as it was and as it is today
  Until March 2026 the tutorial's scripts declared task_queue as a classic durable queue (the
  form the other features narrate); since rabbitmq-tutorials 0b32ef6 they declare it, and
  hello, as durable quorum queues. A queue never changes its type, and a declaration of the
  other type is refused. Left to their defaults, new_task and the worker take task_queue as it
  exists, and make a new one a quorum queue as today's tutorial does: they work beside the
  tutorial's scripts of either time, whichever side declares the queue first.

  Rule: new_task and the worker work with task_queue as today's tutorial declares it (quorum)

    Scenario: Today's tutorial declared task_queue first (quorum)
      Given today's tutorial has declared "task_queue"
      When the producer sends "First message." with its defaults
      Then the producer says " [x] Sent 'First message.'"
      And the queue "task_queue" holds 1 task and is a quorum queue

    Scenario: new_task declared task_queue first, then today's tutorial (quorum)
      Given the producer has sent "First message." with its defaults
      When today's tutorial's worker declares "task_queue"
      Then the broker accepts the tutorial's declaration
      And the queue "task_queue" holds 1 task and is a quorum queue

    Scenario: The worker does a task sent by today's tutorial (quorum)
      Given today's tutorial's new_task sent "A task of today's tutorial."
      When a worker starts with its defaults
      Then the worker does "A task of today's tutorial." and nothing else

  Rule: They work with task_queue as the tutorial declared it before 2026 (classic)

    Scenario: The tutorial's classic task_queue is taken as it is (classic)
      Given a durable queue "task_queue" holding the task "First message."
      When the producer sends "Second message." with its defaults
      Then the producer says " [x] Sent 'Second message.'"
      And the queue "task_queue" holds 2 tasks and is a classic queue

  @contrast
  Rule: A queue type given explicitly is declared as given, and a queue of the other type refuses it

    Scenario: A classic declaration is refused by today's tutorial's quorum task_queue
      Given today's tutorial has declared "task_queue"
      When the producer sends "First message." to "task_queue" as a durable queue
      Then the producer fails with one line saying "406 PRECONDITION_FAILED" and "use --queue-type quorum"
      And the queue "task_queue" holds 0 tasks and is a quorum queue
