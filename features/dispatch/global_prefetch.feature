@dispatch
Feature: A prefetch shared by a channel's consumers
  basic.qos with global set limits a whole channel: a worker that consumes several queues on one
  channel with a global prefetch of 1 holds one task in all, whichever queue it came from
  (kombu and Celery have relied on it). RabbitMQ 4 lists global QoS as a deprecated feature
  (global_qos); upstream's 4.3 denies it by default and then answers such a basic.qos as if
  it were per consumer, without an error (rabbit_channel.erl, v4.3.5): the worker holds one task
  per queue (features/defects.toml global_qos_per_consumer). Quorum queues never supported it:
  these queues are classic.

  Rule: A global prefetch of 1 holds one task for the whole channel

    @defect_global_qos_per_consumer
    Scenario: A worker with a global prefetch of 1 on two queues holds one task
      Given 2 tasks are waiting in each of the queues "task_queue" and "urgent"
      When a worker consumes both on one channel, with a global prefetch of 1, acknowledging nothing
      Then it holds 1 task, and the broker shows 1 unacknowledged in all

  @contrast
  Rule: A prefetch of 1 per consumer holds one task per queue

    Scenario: A worker with a prefetch of 1 per consumer on two queues holds two tasks
      Given 2 tasks are waiting in each of the queues "task_queue" and "urgent"
      When a worker consumes both on one channel, with a prefetch of 1 per consumer, acknowledging nothing
      Then it holds 2 tasks, and the broker shows 2 unacknowledged in all
