@reliability @broker_control
Feature: Message durability
  Acknowledgments protect tasks from a dying worker; durability protects them from a dying
  broker. Both the queue (durable) and the task (persistent) must be marked, and the producer
  must have the broker's confirm.

  Rule: A durable queue and its persistent, confirmed tasks survive the broker

    Scenario Outline: Tasks survive a broker <event>
      Given 5 persistent tasks are waiting in the durable queue "task_queue"
      When the broker <event>
      And a worker takes the queue
      Then the worker does all 5 tasks

      Examples:
        | event                             |
        | restarts                          |
        | crashes and recovers              |

  Rule: The tutorial's own flow: tasks sent with new_task survive a restart, then a worker does them

    Scenario: Tasks sent with new_task survive a broker restart
      Given the tasks "First message.", "Second message.." and "Third message..." are sent with new_task
      When the broker restarts
      And a worker takes the queue
      Then the worker does all 3 tasks

  @contrast
  Rule: What is not durable is gone after a restart

    @defect_transient_nonexcl_queues_denied
    Scenario: A transient queue is gone
      Given 5 persistent tasks are waiting in the transient queue "hello"
      When the broker restarts
      Then the queue "hello" no longer exists

    Scenario: Transient tasks in a durable queue are gone
      Given 5 transient tasks are waiting in the durable queue "task_queue"
      When the broker restarts
      Then the queue "task_queue" holds no tasks
