// The tutorial's worker on lapin (tokio): prefetch 1, ack after the work, which awaits a timer
// in the consumer loop while lapin's own tasks keep the connection (heartbeats) going; lapin's
// automatic recovery is off by default, and left so.
// Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
use futures_lite::StreamExt;
use lapin::{
    options::*,
    types::{AMQPValue, FieldTable},
    Connection, ConnectionProperties,
};
use std::{env, fs::OpenOptions, io::Write, time::Duration};

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => { out.push('\\'); out.push(c); }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Events(std::fs::File);

impl Events {
    fn write(&mut self, json: String) {
        self.0.write_all(format!("{json}\n").as_bytes()).expect("events file");
    }
}

#[tokio::main]
async fn main() {
    let mut events = Events(OpenOptions::new().append(true).create(true)
        .open(var("WORKER_EVENTS").expect("WORKER_EVENTS")).expect("events file"));
    let mut url = var("WORKER_URL").expect("WORKER_URL");
    if let Some(heartbeat) = var("WORKER_HEARTBEAT") {
        url.push_str(if url.contains('?') { "&" } else { "?" });
        url.push_str(&format!("heartbeat={heartbeat}"));
    }
    let name = var("WORKER_CONNECTION_NAME").unwrap_or_else(|| "worker".into());
    let conn = Connection::connect(&url, ConnectionProperties::default().with_connection_name(name.into()))
        .await
        .expect("connection error");
    let channel = conn.create_channel().await.expect("create_channel");

    let queue = var("WORKER_QUEUE").unwrap_or_else(|| "task_queue".into());
    let queue_type = var("WORKER_QUEUE_TYPE").unwrap_or_else(|| "classic".into());
    let mut args = FieldTable::default();
    if queue_type != "classic" {
        args.insert("x-queue-type".into(), AMQPValue::LongString(queue_type.clone().into()));
    }
    if let (Some(limit), true) = (var("WORKER_DELIVERY_LIMIT"), queue_type == "quorum") {
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit.parse().expect("limit")));
    }
    if let Some(dead) = var("WORKER_DEAD_LETTER") {
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dead.into()));
    }
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await
        .expect("queue_declare");
    let prefetch: u16 = var("WORKER_PREFETCH").map(|p| p.parse().expect("prefetch")).unwrap_or(1);
    if prefetch > 0 {
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.expect("basic_qos");
    }
    let seconds_per_dot: f64 = var("WORKER_SECONDS_PER_DOT").map(|s| s.parse().expect("seconds")).unwrap_or(1.0);
    let fail_on = var("WORKER_FAIL_ON");
    let crash_on = var("WORKER_CRASH_ON");
    let no_ack = var("WORKER_AUTO_ACK").as_deref() == Some("1"); // the first tutorial's no_ack

    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions { no_ack, ..Default::default() }, FieldTable::default())
        .await
        .expect("basic_consume");
    println!(" [*] Waiting for messages. To exit press CTRL+C");
    events.write("{\"event\": \"consuming\"}".into());

    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.expect("error in consumer");
        let task = String::from_utf8_lossy(&delivery.data).to_string();
        println!(" [x] Received {task}");
        events.write(format!("{{\"event\": \"received\", \"body\": {}, \"redelivered\": {}}}",
                             quote(&task), delivery.redelivered));
        if crash_on.as_deref().is_some_and(|c| task.contains(c)) {
            std::process::abort(); // SIGABRT: a crash, no cleanup
        }
        if fail_on.as_deref().is_some_and(|f| task.contains(f)) {
            println!(" [!] Failed {task}");
            if !no_ack {
                delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.expect("nack");
            }
            continue;
        }
        let dots = task.matches('.').count() as f64;
        tokio::time::sleep(Duration::from_secs_f64(dots * seconds_per_dot)).await;
        println!(" [x] Done");
        events.write(format!("{{\"event\": \"done\", \"body\": {}}}", quote(&task)));
        if !no_ack {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    eprintln!("the consumer ended: the connection or channel closed");
    std::process::exit(1);
}
