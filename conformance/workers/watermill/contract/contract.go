// Package contract turns the conformance contract's WORKER_* variables into Watermill's AMQP
// configuration: its durable-queue preset (amqp.NewDurableQueueConfig: the queue named after the
// topic, durable, persistent messages, prefetch 1), with the queue arguments the contract asks
// for, the connection's name and heartbeat. Contract: docs/conformance.md.
package contract

import (
	"os"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Queue is the task queue's name, Watermill's topic.
func Queue() string {
	if q := os.Getenv("WORKER_QUEUE"); q != "" {
		return q
	}
	return "task_queue"
}

// Config is Watermill's durable-queue preset for WORKER_URL and the contract's queue.
func Config() amqp.Config {
	config := amqp.NewDurableQueueConfig(os.Getenv("WORKER_URL"))
	args := amqp091.Table{}
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
	config.Queue.Arguments = args

	amqpConfig := amqp091.Config{Properties: amqp091.NewConnectionProperties()}
	name := os.Getenv("WORKER_CONNECTION_NAME")
	if name == "" {
		name = "watermill worker"
	}
	amqpConfig.Properties.SetClientConnectionName(name)
	if h := os.Getenv("WORKER_HEARTBEAT"); h != "" {
		seconds, _ := strconv.Atoi(h)
		amqpConfig.Heartbeat = time.Duration(seconds) * time.Second
	}
	config.Connection.AmqpConfig = &amqpConfig
	return config
}
