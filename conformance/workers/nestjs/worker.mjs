// A NestJS microservice on Nest's RabbitMQ transport (@nestjs/microservices, Transport.RMQ), with
// an event handler (@EventPattern) for the contract's tasks, as Nest's microservices guide writes
// one. NEST_PROFILE picks the settings:
//   unset     Nest's defaults: noAck (the broker forgets a task as it sends it), no prefetch
//             limit unless WORKER_PREFETCH asks for one (prefetchCount), the reconnection of
//             amqp-connection-manager, no shutdown hooks;
//   manual    manual acknowledgment as Nest's guide shows it: noAck false, and the handler acks
//             the task through the context's channel once its work is done (and, for a task that
//             fails, nacks it: amqplib's nack requeues).
// WORKER_AUTO_ACK=1, in either profile: noAck true (Nest's default) and no ack from the handler.
// The decorators are applied as the functions they are (this file is plain JavaScript; Nest's
// examples are TypeScript). The queue is declared by Nest (queueOptions: durable, and the
// arguments the contract asks for); tasks come in Nest's own format, sent by send.mjs.
// Contract: docs/conformance.md.
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload, Transport } from '@nestjs/microservices';
import { appendFileSync } from 'node:fs';
import { queueOptions } from './queue.mjs';

const env = process.env;
const manual = env.NEST_PROFILE === 'manual' && env.WORKER_AUTO_ACK !== '1';
const secondsPerDot = Number(env.WORKER_SECONDS_PER_DOT || '1');
const event = (kind, fields) => appendFileSync(env.WORKER_EVENTS, JSON.stringify({ event: kind, ...fields }) + '\n');

class Tasks {
  async work(task, context) {
    const message = context.getMessage();
    console.log(' [x] Received %s', task);
    event('received', { body: task, redelivered: message.fields.redelivered });
    if (env.WORKER_CRASH_ON && task.includes(env.WORKER_CRASH_ON)) {
      process.kill(process.pid, 'SIGKILL');      // as a segfault or the OOM killer would
    }
    if (env.WORKER_FAIL_ON && task.includes(env.WORKER_FAIL_ON)) {
      console.log(' [!] Failed %s', task);
      if (manual) context.getChannelRef().nack(message);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, (task.split('.').length - 1) * secondsPerDot * 1000));
    console.log(' [x] Done');
    event('done', { body: task });
    if (manual) context.getChannelRef().ack(message);
  }
}
const work = Object.getOwnPropertyDescriptor(Tasks.prototype, 'work');
EventPattern('task')(Tasks.prototype, 'work', work);
Payload()(Tasks.prototype, 'work', 0);
Ctx()(Tasks.prototype, 'work', 1);
Controller()(Tasks);

class TasksModule {}
Module({ controllers: [Tasks] })(TasksModule);

const options = {
  urls: [env.WORKER_URL || 'amqp://localhost'],
  queue: env.WORKER_QUEUE || 'task_queue',
  queueOptions: queueOptions(env),
  socketOptions: {
    connectionOptions: { clientProperties: { connection_name: env.WORKER_CONNECTION_NAME || 'nestjs worker' } },
    ...(env.WORKER_HEARTBEAT ? { heartbeatIntervalInSeconds: Number(env.WORKER_HEARTBEAT) } : {}),
  },
  ...(env.WORKER_PREFETCH ? { prefetchCount: Number(env.WORKER_PREFETCH) } : {}),
  ...(manual ? { noAck: false } : {}),
};
const app = await NestFactory.createMicroservice(TasksModule, { transport: Transport.RMQ, options });
await app.listen();
console.log(' [*] Waiting for messages');
