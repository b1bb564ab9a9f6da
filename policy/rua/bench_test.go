package rua

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

// BenchmarkRecordBolt measures one collected message on the embedded
// store: mostly known rows (the common case), one new row in 16.
func BenchmarkRecordBolt(b *testing.B) {
	s := store.NewBolt(filepath.Join(b.TempDir(), "state.db"), time.Second)
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &Collector{Store: s}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		o := obs(fmt.Sprintf("192.0.2.%d", i%16), day1)
		if i%16 == 0 {
			o.Row.EnvelopeFrom = fmt.Sprintf("b%d.example.com", i)
		}
		if _, err := c.Record(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuild10kRows(b *testing.B) {
	d := &Data{Domain: "example.com", Day: DayStart(day1), Policy: testPolicy()}
	for i := 0; i < 10000; i++ {
		r := obs(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), day1).Row
		d.Rows = append(d.Rows, Counted{r, int64(i + 1)})
	}
	for b.Loop() {
		rep, err := Gzip(ident, Build(ident, d))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(rep.GZ)), "gzbytes")
	}
}

// BenchmarkRecordBatchBolt is the queue's case under load: batches of 512
// messages from 16 sources; ns/op is per message.
func BenchmarkRecordBatchBolt(b *testing.B) {
	s := store.NewBolt(filepath.Join(b.TempDir(), "state.db"), time.Second)
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &Collector{Store: s}
	ctx := context.Background()
	batch := make([]Observation, 512)
	for i := range batch {
		batch[i] = obs(fmt.Sprintf("192.0.2.%d", i%16), day1)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		if err := c.RecordBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
