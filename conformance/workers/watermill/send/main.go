// The adapter: each line of stdin becomes one Watermill message (its payload the task, its UUID
// in Watermill's header) published by Watermill's AMQP publisher with the same durable-queue
// preset, persistent, each publish waiting for the broker's confirm (ConfirmDelivery). The queue
// is declared first, as the worker declares it (SubscribeInitialize), so that no task is sent
// to a queue not there yet. Exits 0 once all are confirmed.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"

	"workqueue/conformance/watermill/contract"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	logger := watermill.NopLogger{}
	config := contract.Config()
	config.Publish.ConfirmDelivery = true
	declarer, err := amqp.NewSubscriber(config, logger)
	if err != nil {
		fail("cannot connect", err)
	}
	if err := declarer.SubscribeInitialize(contract.Queue()); err != nil {
		fail("cannot declare the queue", err)
	}
	declarer.Close()
	publisher, err := amqp.NewPublisher(config, logger)
	if err != nil {
		fail("cannot connect", err)
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if err := publisher.Publish(contract.Queue(), message.NewMessage(watermill.NewUUID(), []byte(lines.Text()))); err != nil {
			fail("cannot publish", err)
		}
	}
	if err := publisher.Close(); err != nil {
		fail("cannot close", err)
	}
}
