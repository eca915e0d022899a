@production
Feature: A full queue pushes back
  A queue with a length limit (x-max-length) holds at most that many ready tasks. Told to
  refuse the rest (x-overflow reject-publish), it nacks the next one: the producer says the
  queue is full, with its own exit code, and nothing already queued is lost. By default a full
  queue makes room instead, by dropping its oldest task, and nobody is told; with a dead-letter
  queue, the dropped task lands there.

  Rule: A full queue that refuses new tasks tells the producer, and keeps what it holds

    Scenario: new_task is refused by a full queue
      Given a task queue that holds at most 3 tasks and refuses the rest
      And the tasks "task 1", "task 2" and "task 3" are sent with new_task
      When the task "task 4" is sent with new_task
      Then the producer fails with exit code 7 and one line saying "is full"
      And the queue "task_queue" holds "task 1", "task 2" and "task 3"

  @contrast
  Rule: By default a full queue drops its oldest task, and nobody is told

    Scenario: The oldest task is dropped to make room
      Given a task queue that holds at most 3 tasks
      When the tasks "task 1", "task 2", "task 3" and "task 4" are sent with new_task
      Then the queue "task_queue" holds "task 2", "task 3" and "task 4"

    Scenario: With a dead-letter queue, the dropped task lands there
      Given a task queue that holds at most 3 tasks, dropping the oldest to the dead-letter queue "task_queue.dead"
      When the tasks "task 1", "task 2", "task 3" and "task 4" are sent with new_task
      Then the dead-letter queue "task_queue.dead" holds "task 1", dropped for the length limit
      And the queue "task_queue" holds "task 2", "task 3" and "task 4"
