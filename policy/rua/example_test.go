package rua_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/policy/store"
)

// The daemon's wiring: one collector on the shared store, a queue in
// front of it fed by the DMARC step, and a reporter run by the hourly
// scheduler.
func Example() {
	st := store.NewMemory() // the daemon passes its [store] (bolt or Redis)
	col := &rua.Collector{Store: st, Guard: rua.LoopGuard{ReportAddresses: []string{"dmarc@receiver.example"}}}
	q := rua.NewQueue(col, 4096, nil)

	// In the DMARC step, after the verdict: never blocks.
	evaluated := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	q.Observe(rua.Observation{
		Time:   evaluated,
		Policy: rua.Policy{Domain: "example.com", P: rua.DispositionReject, Pct: 100, RUA: []string{"mailto:dmarc@example.com"}},
		Row: rua.Row{
			SourceIP: netip.MustParseAddr("192.0.2.1"), HeaderFrom: "example.com", EnvelopeFrom: "example.com",
			Disposition: rua.DispositionNone, DKIM: rua.ResultPass, SPF: rua.ResultPass,
			SPFAuth: []rua.SPFAuth{{Domain: "example.com", Scope: rua.ScopeMFrom, Result: rua.SPFPass}},
		},
		Recipients: []string{"user@receiver.example"},
	})
	ctx, stop := context.WithCancel(context.Background())
	stop()
	q.Run(ctx) // the daemon runs it in a goroutine until shutdown

	reports, _ := (&rua.Reporter{Collector: col, Identity: rua.Identity{
		OrgName: "Receiver", Submitter: "receiver.example", Email: "dmarc-noreply@receiver.example"}}).Build(context.Background(), evaluated)
	for _, r := range reports {
		fmt.Println(r.Subject())
		fmt.Println(r.FileName(), r.Messages)
	}
	// Output:
	// Report Domain: example.com Submitter: receiver.example Report-ID: <20261201.19fe21abb8bce322>
	// receiver.example!example.com!1796083200!1796169599!20261201.19fe21abb8bce322.xml.gz 1
}
