// The task queue as the contract declares it, in Nest's queueOptions (amqplib's assertQueue
// options): durable, no x-queue-type for a classic queue, the limit and dead-letter queue asked.
export function queueOptions(env) {
  const args = {};
  const type = env.WORKER_QUEUE_TYPE || 'classic';
  if (type !== 'classic') args['x-queue-type'] = type;
  if (env.WORKER_DELIVERY_LIMIT && type === 'quorum') args['x-delivery-limit'] = Number(env.WORKER_DELIVERY_LIMIT);
  if (env.WORKER_DEAD_LETTER) {
    args['x-dead-letter-exchange'] = '';
    args['x-dead-letter-routing-key'] = env.WORKER_DEAD_LETTER;
  }
  return { durable: true, arguments: args };
}
