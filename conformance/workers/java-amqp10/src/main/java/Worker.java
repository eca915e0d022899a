// The AMQP 1.0 tutorial's work-queue Worker (rabbitmq-tutorials, java-amqp) on RabbitMQ's AMQP 1.0
// Java client: the queue declared through the client's management API, a consumer with a credit
// of 1, the work in its message handler, and the task accepted in a `finally` once the handler is
// over, whether the work succeeded or threw; the client's own connection recovery (on by default).
// A shutdown hook closes the consumer, the connection and the environment.
// WORKER_PREFETCH is the link credit (AMQP 1.0 has no "no limit"); WORKER_HEARTBEAT the idle
// timeout; WORKER_AUTO_ACK=1 a pre-settled link (the broker settles each task as it sends it: the
// auto-ack contrast), with no accept; WORKER_SETTLE_FAILED how a task that failed is settled instead
// of the accept: released (requeue()), modified with delivery-failed (requeue(annotations, true)) or
// rejected (discard()); WORKER_CLIENT_PREFETCH=1 no initialCredits call: the client's default
// credit (100 in amqp-client 1.5.0). RabbitMQ 4 only. Contract: docs/conformance.md.
import com.rabbitmq.client.amqp.Connection;
import com.rabbitmq.client.amqp.ConnectionBuilder;
import com.rabbitmq.client.amqp.Consumer;
import com.rabbitmq.client.amqp.ConsumerBuilder;
import com.rabbitmq.client.amqp.Environment;
import com.rabbitmq.client.amqp.Management;
import com.rabbitmq.client.amqp.Resource;
import com.rabbitmq.client.amqp.impl.AmqpEnvironmentBuilder;

import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

public class Worker {
  private static FileOutputStream events;

  private static String env(String name, String otherwise) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? otherwise : value;
  }

  private static String json(String text) {
    StringBuilder out = new StringBuilder("\"");
    text.chars().forEach(c -> {
      if (c == '"' || c == '\\') out.append('\\').append((char) c);
      else if (c < 0x20) out.append(String.format("\\u%04x", c));
      else out.append((char) c);
    });
    return out.append('"').toString();
  }

  private static synchronized void event(String line) {
    try {
      events.write((line + "\n").getBytes(StandardCharsets.UTF_8));
      events.flush();
    } catch (IOException e) {
      throw new IllegalStateException("cannot write the events file", e);
    }
  }

  private static void work(String task, double secondsPerDot) throws InterruptedException {
    long dots = task.chars().filter(c -> c == '.').count();
    Thread.sleep((long) (dots * secondsPerDot * 1000));
  }

  public static void main(String[] argv) throws Exception {
    events = new FileOutputStream(System.getenv("WORKER_EVENTS"), true);
    String queue = env("WORKER_QUEUE", "task_queue");
    double secondsPerDot = Double.parseDouble(env("WORKER_SECONDS_PER_DOT", "1"));
    String failOn = env("WORKER_FAIL_ON", null);
    String crashOn = env("WORKER_CRASH_ON", null);
    boolean preSettled = "1".equals(env("WORKER_AUTO_ACK", null));
    String settleFailed = env("WORKER_SETTLE_FAILED", null);

    Environment environment = new AmqpEnvironmentBuilder().build();
    ConnectionBuilder builder = environment.connectionBuilder()
        .uri(env("WORKER_URL", "amqp://guest:guest@localhost:5672/%2f"))
        .name(env("WORKER_CONNECTION_NAME", "amqp 1.0 worker"));
    String heartbeat = env("WORKER_HEARTBEAT", null);
    if (heartbeat != null) builder.idleTimeout(Duration.ofSeconds(Long.parseLong(heartbeat)));
    Connection connection = builder.build();

    try (Management management = connection.management()) {
      Management.QueueSpecification spec = management.queue(queue);
      if (env("WORKER_QUEUE_TYPE", "classic").equals("quorum")) {
        Management.QuorumQueueSpecification quorum = spec.quorum();
        String limit = env("WORKER_DELIVERY_LIMIT", null);
        if (limit != null) quorum.deliveryLimit(Integer.parseInt(limit));
        spec = quorum.queue();
      }
      String deadLetter = env("WORKER_DEAD_LETTER", null);
      if (deadLetter != null) spec.deadLetterExchange("").deadLetterRoutingKey(deadLetter);
      spec.declare();
    }

    System.out.println(" [*] Waiting for messages. To exit press CTRL+C");
    ConsumerBuilder consumerBuilder = connection.consumerBuilder();
    if (preSettled) consumerBuilder.preSettled();
    consumerBuilder.queue(queue);
    if (!"1".equals(env("WORKER_CLIENT_PREFETCH", null))) {
      consumerBuilder.initialCredits(Integer.parseInt(env("WORKER_PREFETCH", "1")));
    }
    Consumer consumer = consumerBuilder
        .listeners(context -> {
          if (context.currentState() == Resource.State.OPEN) event("{\"event\": \"consuming\"}");
        })
        .messageHandler((context, message) -> {
          String task = new String(message.body(), StandardCharsets.UTF_8);
          System.out.println(" [x] Received '" + task + "'");
          event("{\"event\": \"received\", \"body\": " + json(task) + ", \"redelivered\": "
              + !message.firstAcquirer() + "}");
          boolean failed = false;
          try {
            if (crashOn != null && task.contains(crashOn)) {
              // SIGKILL of this JVM, as a segfault or the OOM killer would: no finally, no hook
              new ProcessBuilder("kill", "-9", String.valueOf(ProcessHandle.current().pid())).start().waitFor();
            }
            if (failOn != null && task.contains(failOn)) {
              System.out.println(" [!] Failed '" + task + "'");
              failed = true;
              if (settleFailed != null) return;          // settled below, with that outcome
              throw new IllegalStateException("task failed: " + task);
            }
            work(task, secondsPerDot);
            event("{\"event\": \"done\", \"body\": " + json(task) + "}");
          } catch (InterruptedException | IOException e) {
            Thread.currentThread().interrupt();
          } finally {
            System.out.println(" [x] Done");
            if (preSettled) {
              // the broker settled it as it sent it
            } else if (failed && "released".equals(settleFailed)) {
              context.requeue();
            } else if (failed && "modified".equals(settleFailed)) {
              context.requeue(java.util.Map.of(), true);
            } else if (failed && "rejected".equals(settleFailed)) {
              context.discard();
            } else {
              context.accept();
            }
          }
        })
        .build();

    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      consumer.close();
      connection.close();
      environment.close();
    }));
    Thread.sleep(Long.MAX_VALUE);
  }
}
