// A Watermill worker as Watermill's documentation builds one: the AMQP subscriber with its
// durable-queue preset, a Router with one handler (no middleware), and the SignalsHandler plugin
// that closes the Router on SIGINT or SIGTERM. The handler returns an error for a task that
// fails: the Router nacks it, and the subscriber nacks with requeue (its default). The Router
// acks a task once the handler returns nil. Contract: docs/conformance.md; tasks come in
// Watermill's message format, sent by ../send.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/plugin"

	"workqueue/conformance/watermill/contract"
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

func main() {
	var err error
	events, err = os.OpenFile(os.Getenv("WORKER_EVENTS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot open the events file:", err)
		os.Exit(1)
	}
	secondsPerDot, _ := strconv.ParseFloat(os.Getenv("WORKER_SECONDS_PER_DOT"), 64)
	if secondsPerDot == 0 {
		secondsPerDot = 1
	}
	failOn, crashOn := os.Getenv("WORKER_FAIL_ON"), os.Getenv("WORKER_CRASH_ON")

	logger := watermill.NewStdLogger(false, false)
	config := contract.Config()
	if p := os.Getenv("WORKER_PREFETCH"); p != "" {
		config.Consume.Qos.PrefetchCount, _ = strconv.Atoi(p) // 0: no basic.qos, no limit
	}
	subscriber, err := amqp.NewSubscriber(config, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create the subscriber:", err)
		os.Exit(1)
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create the router:", err)
		os.Exit(1)
	}
	router.AddPlugin(plugin.SignalsHandler)
	router.AddNoPublisherHandler("tasks", contract.Queue(), subscriber, func(msg *message.Message) error {
		task := string(msg.Payload)
		fmt.Println(" [x] Received", task)
		event("received", map[string]any{"body": task, "redelivered": amqp.IsMessageRedelivered(msg)})
		if crashOn != "" && strings.Contains(task, crashOn) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL) // as a segfault or the OOM killer would
		}
		if failOn != "" && strings.Contains(task, failOn) {
			fmt.Println(" [!] Failed", task)
			return fmt.Errorf("task failed: %s", task)
		}
		dots := strings.Count(task, ".")
		time.Sleep(time.Duration(float64(dots) * secondsPerDot * float64(time.Second)))
		fmt.Println(" [x] Done")
		event("done", map[string]any{"body": task})
		return nil
	})
	if err := router.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}
