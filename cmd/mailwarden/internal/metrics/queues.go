package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// Queues is implemented by a Daemon whose services queue work: the state
// store's write-behind queue and the scanners' scan limits. Read at scrape
// time, from the services in force.
type Queues interface {
	// StoreQueue returns the write-behind counters; false without one.
	StoreQueue() (store.BehindStats, bool)
	// ScanQueues returns each limited scanner's counters, by name.
	ScanQueues() map[string]virus.LimitStats
}

type queueCollector struct {
	q                                                 Queues
	queued, committed, dropped, failed, pending       *prometheus.Desc
	scanMax, scanActive, scanWaiting, scans, timeouts *prometheus.Desc
	waited                                            *prometheus.Desc
}

func newQueueCollector(q Queues) *queueCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &queueCollector{q: q,
		queued:      d("mailwarden_store_writes_queued_total", "Observer writes (auto-reply memory) accepted by the state store's write-behind queue."),
		committed:   d("mailwarden_store_writes_committed_total", "Queued writes committed to the store (one transaction per batch)."),
		dropped:     d("mailwarden_store_writes_dropped_total", "Writes dropped because the write-behind queue was full ([store] on_full = \"drop\")."),
		failed:      d("mailwarden_store_writes_failed_total", "Queued writes lost because their batch failed to commit."),
		pending:     d("mailwarden_store_writes_pending", "Writes queued or committing now (at most [store] batch_size)."),
		scanMax:     d("mailwarden_virus_scans_max", "Concurrent scans allowed per scanner (max_scans, or clamd's MaxThreads).", "scanner"),
		scanActive:  d("mailwarden_virus_scans_active", "Scans running now.", "scanner"),
		scanWaiting: d("mailwarden_virus_scans_waiting", "Scans waiting for a free slot now.", "scanner"),
		scans:       d("mailwarden_virus_scans_total", "Scans started.", "scanner"),
		timeouts:    d("mailwarden_virus_queue_timeouts_total", "Scans given up after [virus] queue_timeout in the queue (reason virus-queue-timeout).", "scanner"),
		waited:      d("mailwarden_virus_queue_wait_seconds_total", "Time scans spent waiting for a slot.", "scanner"),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.committed, c.dropped, c.failed, c.pending,
		c.scanMax, c.scanActive, c.scanWaiting, c.scans, c.timeouts, c.waited} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if st, ok := c.q.StoreQueue(); ok {
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.CounterValue, float64(st.Queued))
		ch <- prometheus.MustNewConstMetric(c.committed, prometheus.CounterValue, float64(st.Committed))
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped))
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(st.Failed))
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	}
	for name, st := range c.q.ScanQueues() {
		ch <- prometheus.MustNewConstMetric(c.scanMax, prometheus.GaugeValue, float64(st.Max), name)
		ch <- prometheus.MustNewConstMetric(c.scanActive, prometheus.GaugeValue, float64(st.Active), name)
		ch <- prometheus.MustNewConstMetric(c.scanWaiting, prometheus.GaugeValue, float64(st.Waiting), name)
		ch <- prometheus.MustNewConstMetric(c.scans, prometheus.CounterValue, float64(st.Scans), name)
		ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(st.QueueTimeouts), name)
		ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, st.Waited.Seconds(), name)
	}
}
