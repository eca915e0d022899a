<?php
// The tutorial's worker.php on php-amqplib (Debian's package): prefetch 1, ack after the work,
// which sleeps in the consumer callback; heartbeats only when asked for (the library's default
// is none); no reconnection.
// Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
require_once '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPConnectionConfig;
use PhpAmqpLib\Connection\AMQPConnectionFactory;
use PhpAmqpLib\Wire\AMQPTable;

function env_or(string $name, ?string $otherwise): ?string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $otherwise : $value;
}

$events = fopen(getenv('WORKER_EVENTS'), 'a');
function event($events, array $record): void
{
    fwrite($events, json_encode($record) . "\n");
    fflush($events);
}

$url = parse_url(getenv('WORKER_URL'));
$config = new AMQPConnectionConfig();
$config->setHost($url['host']);
$config->setPort($url['port'] ?? 5672);
$config->setUser(rawurldecode($url['user'] ?? 'guest'));
$config->setPassword(rawurldecode($url['pass'] ?? 'guest'));
$config->setVhost(isset($url['path']) && strlen($url['path']) > 1 ? rawurldecode(substr($url['path'], 1)) : '/');
$config->setConnectionName(env_or('WORKER_CONNECTION_NAME', 'worker'));
if (env_or('WORKER_HEARTBEAT', null) !== null) {
    $config->setHeartbeat((int) getenv('WORKER_HEARTBEAT'));
    $config->setReadTimeout(2 * (int) getenv('WORKER_HEARTBEAT'));
    $config->setWriteTimeout(2 * (int) getenv('WORKER_HEARTBEAT'));
}
$connection = AMQPConnectionFactory::create($config);
$channel = $connection->channel();

$queue = env_or('WORKER_QUEUE', 'task_queue');
$type = env_or('WORKER_QUEUE_TYPE', 'classic');
$args = [];
if ($type !== 'classic') {
    $args['x-queue-type'] = $type;
}
if (env_or('WORKER_DELIVERY_LIMIT', null) !== null && $type === 'quorum') {
    $args['x-delivery-limit'] = (int) getenv('WORKER_DELIVERY_LIMIT');
}
if (env_or('WORKER_DEAD_LETTER', null) !== null) {
    $args['x-dead-letter-exchange'] = '';
    $args['x-dead-letter-routing-key'] = getenv('WORKER_DEAD_LETTER');
}
$channel->queue_declare($queue, false, true, false, false, false, new AMQPTable($args));
$prefetch = (int) env_or('WORKER_PREFETCH', '1');
if ($prefetch > 0) {
    $channel->basic_qos(null, $prefetch, null);
}
$secondsPerDot = (float) env_or('WORKER_SECONDS_PER_DOT', '1');
$failOn = env_or('WORKER_FAIL_ON', null);
$crashOn = env_or('WORKER_CRASH_ON', null);
$noAck = env_or('WORKER_AUTO_ACK', null) === '1';   // the first tutorial's no_ack

$callback = function ($msg) use ($events, $secondsPerDot, $failOn, $crashOn, $noAck) {
    $task = $msg->getBody();
    echo ' [x] Received ', $task, "\n";
    event($events, ['event' => 'received', 'body' => $task, 'redelivered' => (bool) $msg->isRedelivered()]);
    if ($crashOn !== null && str_contains($task, $crashOn)) {
        posix_kill(getmypid(), 9);                // SIGKILL, as a segfault or the OOM killer would
    }
    if ($failOn !== null && str_contains($task, $failOn)) {
        echo ' [!] Failed ', $task, "\n";
        if (!$noAck) {
            $msg->nack(true);
        }
        return;
    }
    usleep((int) (substr_count($task, '.') * $secondsPerDot * 1000000));
    echo " [x] Done\n";
    event($events, ['event' => 'done', 'body' => $task]);
    if (!$noAck) {
        $msg->ack();
    }
};

$channel->basic_consume($queue, '', false, $noAck, false, false, $callback);
echo " [*] Waiting for messages. To exit press CTRL+C\n";
event($events, ['event' => 'consuming']);
$channel->consume();
