package rua

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Queue decouples collection from mail flow: the DMARC step calls
// Observe, which never blocks, and one worker (Run, started by the
// daemon) writes to the store. When the queue is full the observation is
// dropped, counted and logged: the store being slow must not slow mail
// down, and nothing is lost silently.
type Queue struct {
	c       *Collector
	ch      chan Observation
	log     *slog.Logger
	dropped atomic.Int64
}

// NewQueue returns a queue of size observations in front of c.
func NewQueue(c *Collector, size int, log *slog.Logger) *Queue {
	if size <= 0 {
		size = 1024
	}
	if log == nil {
		log = slog.Default()
	}
	return &Queue{c: c, ch: make(chan Observation, size), log: log}
}

// Observe queues o; it reports false when o was dropped.
func (q *Queue) Observe(o Observation) bool {
	select {
	case q.ch <- o:
		return true
	default:
		if n := q.dropped.Add(1); n == 1 || n%1000 == 0 {
			q.log.Warn("dmarc report: collection queue full, observation dropped", "dropped", n)
		}
		return false
	}
}

// Dropped is the number of observations dropped because the queue was
// full.
func (q *Queue) Dropped() int64 { return q.dropped.Load() }

// Run records queued observations until ctx ends, then records what is
// still queued and returns. Whatever has queued up while the store was
// busy is written as one batch (Collector.RecordBatch). Each write gets
// its own deadline, detached from ctx so that a shutdown does not lose
// what was already queued.
func (q *Queue) Run(ctx context.Context) {
	for {
		select {
		case o := <-q.ch:
			q.record(ctx, q.batch(o))
		case <-ctx.Done():
			for {
				select {
				case o := <-q.ch:
					q.record(ctx, q.batch(o))
				default:
					return
				}
			}
		}
	}
}

// batch returns o and whatever else is queued, up to maxBatch.
func (q *Queue) batch(o Observation) []Observation {
	const maxBatch = 512
	os := []Observation{o}
	for len(os) < maxBatch {
		select {
		case o := <-q.ch:
			os = append(os, o)
		default:
			return os
		}
	}
	return os
}

func (q *Queue) record(ctx context.Context, os []Observation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.c.RecordBatch(ctx, os); err != nil {
		q.log.Warn("dmarc report: not recorded", "messages", len(os), "err", err)
	}
}
