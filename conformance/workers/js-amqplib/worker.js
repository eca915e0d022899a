// The tutorial's worker.js on amqplib (callback-free promise API): prefetch 1, ack after the
// work, which runs on Node's event loop with setTimeout; no reconnection.
// Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
const amqp = require('amqplib');
const fs = require('fs');

const env = process.env;
const events = fs.openSync(env.WORKER_EVENTS, 'a');
const event = (kind, fields) => fs.writeSync(events, JSON.stringify({ event: kind, ...fields }) + '\n');

async function main() {
  const url = new URL(env.WORKER_URL);
  if (env.WORKER_HEARTBEAT) url.searchParams.set('heartbeat', env.WORKER_HEARTBEAT);
  const connection = await amqp.connect(url.toString(), {
    clientProperties: { connection_name: env.WORKER_CONNECTION_NAME || 'worker' },
  });
  const channel = await connection.createChannel();
  const queue = env.WORKER_QUEUE || 'task_queue';
  const args = {};
  const type = env.WORKER_QUEUE_TYPE || 'classic';
  if (type !== 'classic') args['x-queue-type'] = type;
  if (env.WORKER_DELIVERY_LIMIT && type === 'quorum') args['x-delivery-limit'] = Number(env.WORKER_DELIVERY_LIMIT);
  if (env.WORKER_DEAD_LETTER) {
    args['x-dead-letter-exchange'] = '';
    args['x-dead-letter-routing-key'] = env.WORKER_DEAD_LETTER;
  }
  await channel.assertQueue(queue, { durable: true, arguments: args });
  const prefetch = env.WORKER_PREFETCH ? Number(env.WORKER_PREFETCH) : 1;
  if (prefetch) await channel.prefetch(prefetch);
  const secondsPerDot = Number(env.WORKER_SECONDS_PER_DOT || '1');
  const failOn = env.WORKER_FAIL_ON;
  const crashOn = env.WORKER_CRASH_ON;
  const noAck = env.WORKER_AUTO_ACK === '1';       // the first tutorial's noAck: true

  await channel.consume(queue, (msg) => {
    const task = msg.content.toString();
    console.log(' [x] Received %s', task);
    event('received', { body: task, redelivered: msg.fields.redelivered });
    if (crashOn && task.includes(crashOn)) {
      process.kill(process.pid, 'SIGKILL');      // as a segfault or the OOM killer would
    }
    if (failOn && task.includes(failOn)) {
      console.log(' [!] Failed %s', task);
      if (!noAck) channel.nack(msg, false, true);
      return;
    }
    setTimeout(() => {
      console.log(' [x] Done');
      event('done', { body: task });
      if (!noAck) channel.ack(msg);
    }, (task.split('.').length - 1) * secondsPerDot * 1000);
  }, { noAck });
  console.log(' [*] Waiting for messages. To exit press CTRL+C');
  event('consuming', {});
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
