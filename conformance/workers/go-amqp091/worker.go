// The tutorial's worker.go on amqp091-go: prefetch 1, ack after the work, which runs in a
// goroutine ranging over the deliveries while main waits for SIGINT or SIGTERM (and then
// returns, closing the connection); no reconnection.
// Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
package main

import (
	"encoding/json"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var events *os.File

func event(kind string, fields map[string]any) {
	record := map[string]any{"event": kind}
	for k, v := range fields {
		record[k] = v
	}
	line, _ := json.Marshal(record)
	events.Write(append(line, '\n'))
}

func failOnError(err error, msg string) {
	if err != nil {
		log.Fatalf("%s: %s", msg, err)
	}
}

func main() {
	var err error
	events, err = os.OpenFile(os.Getenv("WORKER_EVENTS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	failOnError(err, "Failed to open the events file")

	config := amqp.Config{Properties: amqp.NewConnectionProperties()}
	config.Properties.SetClientConnectionName(os.Getenv("WORKER_CONNECTION_NAME"))
	if h := os.Getenv("WORKER_HEARTBEAT"); h != "" {
		seconds, _ := strconv.Atoi(h)
		config.Heartbeat = time.Duration(seconds) * time.Second
	}
	conn, err := amqp.DialConfig(os.Getenv("WORKER_URL"), config)
	failOnError(err, "Failed to connect to RabbitMQ")
	defer conn.Close()

	ch, err := conn.Channel()
	failOnError(err, "Failed to open a channel")
	defer ch.Close()

	queue := os.Getenv("WORKER_QUEUE")
	args := amqp.Table{}
	queueType := os.Getenv("WORKER_QUEUE_TYPE")
	if queueType != "" && queueType != "classic" {
		args["x-queue-type"] = queueType
	}
	if limit := os.Getenv("WORKER_DELIVERY_LIMIT"); limit != "" && queueType == "quorum" {
		n, _ := strconv.Atoi(limit)
		args["x-delivery-limit"] = n
	}
	if dead := os.Getenv("WORKER_DEAD_LETTER"); dead != "" {
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = dead
	}
	q, err := ch.QueueDeclare(queue, true, false, false, false, args)
	failOnError(err, "Failed to declare a queue")

	prefetch := 1
	if p := os.Getenv("WORKER_PREFETCH"); p != "" {
		prefetch, _ = strconv.Atoi(p)
	}
	if prefetch > 0 {
		failOnError(ch.Qos(prefetch, 0, false), "Failed to set QoS")
	}
	secondsPerDot, _ := strconv.ParseFloat(os.Getenv("WORKER_SECONDS_PER_DOT"), 64)
	failOn := os.Getenv("WORKER_FAIL_ON")
	crashOn := os.Getenv("WORKER_CRASH_ON")
	autoAck := os.Getenv("WORKER_AUTO_ACK") == "1" // the first tutorial's auto-ack

	msgs, err := ch.Consume(q.Name, "", autoAck, false, false, false, nil)
	failOnError(err, "Failed to register a consumer")

	// As the tutorial: the work in a goroutine ranging over the deliveries, main waiting for
	// SIGINT or SIGTERM. When the connection is lost the range ends, the goroutine with it,
	// and main keeps waiting: the process runs on, consuming nothing.
	go func() {
		for d := range msgs {
			task := string(d.Body)
			log.Printf(" [x] Received %s", task)
			event("received", map[string]any{"body": task, "redelivered": d.Redelivered})
			if crashOn != "" && strings.Contains(task, crashOn) {
				syscall.Kill(os.Getpid(), syscall.SIGKILL) // as a segfault or the OOM killer would
			}
			if failOn != "" && strings.Contains(task, failOn) {
				log.Printf(" [!] Failed %s", task)
				if !autoAck {
					d.Nack(false, true)
				}
				continue
			}
			dots := strings.Count(task, ".")
			time.Sleep(time.Duration(float64(dots) * secondsPerDot * float64(time.Second)))
			log.Printf(" [x] Done")
			event("done", map[string]any{"body": task})
			if !autoAck {
				d.Ack(false)
			}
		}
	}()

	log.Printf(" [*] Waiting for messages. To exit press CTRL+C")
	event("consuming", nil)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	log.Printf("Shutting down gracefully...")
}
