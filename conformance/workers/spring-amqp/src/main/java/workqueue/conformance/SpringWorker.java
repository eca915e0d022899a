// A Spring Boot application with one @RabbitListener, as Spring Boot's AMQP guide writes one: the
// starter's auto-configured connection factory, RabbitAdmin (declares the Queue bean) and
// listener container (SimpleMessageListenerContainer). The container's settings are Boot's
// properties: none set here for the defaults column (acknowledge mode AUTO: the container acks
// when the listener returns and rejects with requeue when it throws; prefetch 250; no retry);
// the profile "reliable" (application-reliable.properties, SPRING_PROFILES_ACTIVE=reliable) sets
// what Spring's guides give for not losing or looping tasks. The contract's WORKER_* variables become Boot's properties in main().
// Contract: docs/conformance.md.
package workqueue.conformance;

import java.io.FileOutputStream;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import org.springframework.amqp.core.Message;
import org.springframework.amqp.core.Queue;
import org.springframework.amqp.rabbit.annotation.RabbitListener;
import org.springframework.amqp.rabbit.connection.ConnectionNameStrategy;
import org.springframework.amqp.rabbit.listener.ConsumeOkEvent;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.context.event.EventListener;

@SpringBootApplication
public class SpringWorker {

  private static String env(String name, String otherwise) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? otherwise : value;
  }

  // -- the events file: one JSON object per line, each written whole -------------------------
  private static FileOutputStream events;

  private static String quote(String text) {
    StringBuilder json = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> json.append("\\\"");
        case '\\' -> json.append("\\\\");
        default -> json.append(c < 0x20 ? String.format("\\u%04x", (int) c) : String.valueOf(c));
      }
    }
    return json.append('"').toString();
  }

  private static synchronized void event(String json) {
    try {
      events.write((json + "\n").getBytes(StandardCharsets.UTF_8));
      events.flush();
    } catch (IOException e) {
      throw new IllegalStateException("cannot write the events file", e);
    }
  }

  // -- the contract's variables, as Boot's properties ---------------------------------------
  private static String decode(String part) {
    // percent-decoding of a URL part ('+' is a plus in a URL's authority and path)
    return java.net.URLDecoder.decode(part.replace("+", "%2B"), StandardCharsets.UTF_8);
  }

  static Map<String, Object> properties() {
    Map<String, Object> p = new HashMap<>();
    URI url = URI.create(env("WORKER_URL", "amqp://guest:guest@localhost:5672/"));
    p.put("spring.rabbitmq.host", url.getHost());
    if (url.getPort() > 0) p.put("spring.rabbitmq.port", url.getPort());
    String userInfo = url.getRawUserInfo();
    if (userInfo != null) {
      int colon = userInfo.indexOf(':');
      p.put("spring.rabbitmq.username", decode(colon < 0 ? userInfo : userInfo.substring(0, colon)));
      if (colon >= 0) p.put("spring.rabbitmq.password", decode(userInfo.substring(colon + 1)));
    }
    String path = url.getRawPath();
    if (path != null && path.length() > 1) p.put("spring.rabbitmq.virtual-host", decode(path.substring(1)));
    String heartbeat = env("WORKER_HEARTBEAT", null);
    if (heartbeat != null) p.put("spring.rabbitmq.requested-heartbeat", heartbeat + "s");
    String prefetch = env("WORKER_PREFETCH", null);
    if (prefetch != null) p.put("spring.rabbitmq.listener.simple.prefetch", prefetch);
    // WORKER_AUTO_ACK=1: the container's AcknowledgeMode.NONE (it consumes with autoAck true).
    if ("1".equals(env("WORKER_AUTO_ACK", null))) p.put("spring.rabbitmq.listener.simple.acknowledge-mode", "none");
    p.put("worker.queue", env("WORKER_QUEUE", "task_queue"));
    return p;
  }

  public static void main(String[] args) throws IOException {
    events = new FileOutputStream(System.getenv("WORKER_EVENTS"), true);
    SpringApplication app = new SpringApplication(SpringWorker.class);
    app.setDefaultProperties(properties());
    app.run(args);
  }

  // -- the queue, declared by Boot's RabbitAdmin (again after each reconnection) ----------------
  @Bean
  Queue taskQueue() {
    String type = env("WORKER_QUEUE_TYPE", "classic");
    Map<String, Object> arguments = new HashMap<>();
    if (!type.equals("classic")) arguments.put("x-queue-type", type);
    String limit = env("WORKER_DELIVERY_LIMIT", null);
    if (limit != null && type.equals("quorum")) arguments.put("x-delivery-limit", Integer.parseInt(limit));
    String deadLetter = env("WORKER_DEAD_LETTER", null);
    if (deadLetter != null) {
      arguments.put("x-dead-letter-exchange", "");
      arguments.put("x-dead-letter-routing-key", deadLetter);
    }
    return new Queue(env("WORKER_QUEUE", "task_queue"), true, false, false, arguments);
  }

  @Bean
  ConnectionNameStrategy connectionName() {
    String name = env("WORKER_CONNECTION_NAME", "spring worker");
    return connectionFactory -> name;
  }

  // -- the work --------------------------------------------------------------------------------
  private final double secondsPerDot = Double.parseDouble(env("WORKER_SECONDS_PER_DOT", "1"));
  private final String failOn = env("WORKER_FAIL_ON", null);
  private final String crashOn = env("WORKER_CRASH_ON", null);

  @EventListener
  public void consuming(ConsumeOkEvent started) {
    event("{\"event\": \"consuming\"}");
  }

  @RabbitListener(queues = "${worker.queue}")
  public void work(Message message) throws InterruptedException, IOException {
    String task = new String(message.getBody(), StandardCharsets.UTF_8);
    System.out.println(" [x] Received " + task);
    event("{\"event\": \"received\", \"body\": " + quote(task) + ", \"redelivered\": "
        + Boolean.TRUE.equals(message.getMessageProperties().getRedelivered()) + "}");
    if (crashOn != null && task.contains(crashOn)) {
      // SIGKILL of this JVM, as a segfault or the OOM killer would: no shutdown hook runs
      new ProcessBuilder("kill", "-9", String.valueOf(ProcessHandle.current().pid())).start().waitFor();
    }
    if (failOn != null && task.contains(failOn)) {
      System.out.println(" [!] Failed " + task);
      throw new IllegalStateException("task failed: " + task);
    }
    long dots = task.chars().filter(c -> c == '.').count();
    Thread.sleep((long) (dots * secondsPerDot * 1000));
    System.out.println(" [x] Done");
    event("{\"event\": \"done\", \"body\": " + quote(task) + "}");
  }
}
