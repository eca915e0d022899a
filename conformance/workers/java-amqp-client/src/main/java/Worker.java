// The tutorial's Worker.java on com.rabbitmq:amqp-client: prefetch 1, ack after the work, which
// runs on the client's consumer thread pool (not its I/O thread). The client's automatic
// connection recovery is on by default (since 4.0), and left so.
// Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DeliverCallback;

import java.io.FileWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

public class Worker {
  private static FileWriter events;

  private static String quote(String s) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    return out.append('"').toString();
  }

  private static synchronized void event(String json) {
    try {
      events.write(json + "\n");
      events.flush();
    } catch (IOException e) {
      throw new RuntimeException(e);
    }
  }

  private static String env(String name, String otherwise) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? otherwise : value;
  }

  public static void main(String[] argv) throws Exception {
    events = new FileWriter(System.getenv("WORKER_EVENTS"), StandardCharsets.UTF_8, true);
    ConnectionFactory factory = new ConnectionFactory();
    factory.setUri(System.getenv("WORKER_URL"));
    String heartbeat = env("WORKER_HEARTBEAT", null);
    if (heartbeat != null) factory.setRequestedHeartbeat(Integer.parseInt(heartbeat));
    final Connection connection = factory.newConnection(env("WORKER_CONNECTION_NAME", "worker"));
    final Channel channel = connection.createChannel();

    String queue = env("WORKER_QUEUE", "task_queue");
    String type = env("WORKER_QUEUE_TYPE", "classic");
    Map<String, Object> args = new HashMap<>();
    if (!type.equals("classic")) args.put("x-queue-type", type);
    String limit = env("WORKER_DELIVERY_LIMIT", null);
    if (limit != null && type.equals("quorum")) args.put("x-delivery-limit", Integer.parseInt(limit));
    String dead = env("WORKER_DEAD_LETTER", null);
    if (dead != null) {
      args.put("x-dead-letter-exchange", "");
      args.put("x-dead-letter-routing-key", dead);
    }
    channel.queueDeclare(queue, true, false, false, args);
    int prefetch = Integer.parseInt(env("WORKER_PREFETCH", "1"));
    if (prefetch > 0) channel.basicQos(prefetch);
    double secondsPerDot = Double.parseDouble(env("WORKER_SECONDS_PER_DOT", "1"));
    String failOn = env("WORKER_FAIL_ON", null);
    String crashOn = env("WORKER_CRASH_ON", null);
    boolean autoAck = "1".equals(env("WORKER_AUTO_ACK", null));   // the first tutorial's autoAck

    DeliverCallback deliverCallback = (consumerTag, delivery) -> {
      String task = new String(delivery.getBody(), StandardCharsets.UTF_8);
      System.out.println(" [x] Received " + task);
      event("{\"event\": \"received\", \"body\": " + quote(task) + ", \"redelivered\": "
          + delivery.getEnvelope().isRedeliver() + "}");
      long tag = delivery.getEnvelope().getDeliveryTag();
      if (crashOn != null && task.contains(crashOn)) {
        // SIGKILL of this JVM, as a segfault or the OOM killer would (no shutdown hooks run)
        try {
          new ProcessBuilder("kill", "-9", String.valueOf(ProcessHandle.current().pid())).start().waitFor();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      if (failOn != null && task.contains(failOn)) {
        System.out.println(" [!] Failed " + task);
        if (!autoAck) channel.basicNack(tag, false, true);
        return;
      }
      long dots = task.chars().filter(ch -> ch == '.').count();
      try {
        Thread.sleep((long) (dots * secondsPerDot * 1000));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      System.out.println(" [x] Done");
      event("{\"event\": \"done\", \"body\": " + quote(task) + "}");
      if (!autoAck) channel.basicAck(tag, false);
    };
    channel.basicConsume(queue, autoAck, deliverCallback, consumerTag -> { });
    System.out.println(" [*] Waiting for messages. To exit press CTRL+C");
    event("{\"event\": \"consuming\"}");
  }
}
