// The adapter: each line of stdin becomes one event 'task' in Nest's own format, sent by Nest's
// RabbitMQ client (ClientRMQ.emit) as persistent messages; amqp-connection-manager's channel is
// a confirm channel, and emit's observable completes once the broker confirmed. Exits 0 once all
// are confirmed.
import 'reflect-metadata';
import { ClientRMQ } from '@nestjs/microservices';
import { createInterface } from 'node:readline';
import { lastValueFrom } from 'rxjs';
import { queueOptions } from './queue.mjs';

const env = process.env;
const client = new ClientRMQ({
  urls: [env.WORKER_URL || 'amqp://localhost'],
  queue: env.WORKER_QUEUE || 'task_queue',
  queueOptions: queueOptions(env),
  persistent: true,
});
try {
  await client.connect();
  for await (const line of createInterface({ input: process.stdin })) {
    await lastValueFrom(client.emit('task', line), { defaultValue: undefined });
  }
  await client.close();
} catch (err) {
  console.error(String(err?.message ?? err));
  process.exit(1);
}
process.exit(0);
