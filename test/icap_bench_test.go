package e2e_test

// The ICAP path beside the clamd path (issue 18): the same messages
// scanned by a private clamd over INSTREAM (package clamav) and by a
// private c-icap's virus_scan (backed by its own clamd through clamd_mod)
// over RESPMOD (package icap), with and without a preview, and over
// several concurrent scans. Run:
//
//	go test ./test -run '^$' -bench VirusEngines -benchtime 200x

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/test/harness"
)

func BenchmarkVirusEngines(b *testing.B) {
	clamd := harness.StartClamd(b, harness.ClamdOptions{Signatures: harness.SignaturesHash, DisableCache: true})
	cicap := harness.StartCICAP(b, harness.CICAPOptions{MaxObjectSize: 50 << 20})
	srv, err := clamav.ParseServer(clamd.UnixAddr())
	if err != nil {
		b.Fatal(err)
	}
	cc, err := clamav.New(clamav.Options{Servers: []clamav.Server{srv}})
	if err != nil {
		b.Fatal(err)
	}
	isrv, err := icap.ParseServer(cicap.URL())
	if err != nil {
		b.Fatal(err)
	}
	ic, err := icap.New(icap.Options{Servers: []icap.Server{isrv}})
	if err != nil {
		b.Fatal(err)
	}
	icNoPreview, _ := icap.New(icap.Options{Servers: []icap.Server{isrv}, NoPreview: true})
	for _, size := range []int{4 << 10, 100 << 10, 2 << 20} {
		msg := []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n" + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n", size/53+1))
		open := func() io.Reader { return bytes.NewReader(msg) }
		for _, eng := range []struct {
			name string
			scan func() error
		}{
			{"clamd", func() error {
				r, err := cc.Scan(context.Background(), open, int64(len(msg)))
				if err == nil && r.Infected {
					err = fmt.Errorf("infected: %s", r.Signature)
				}
				return err
			}},
			{"icap-preview", func() error {
				r, err := ic.Scan(context.Background(), open, int64(len(msg)))
				if err == nil && r.Infected {
					err = fmt.Errorf("infected: %s", r.Threat)
				}
				return err
			}},
			{"icap-nopreview", func() error {
				r, err := icNoPreview.Scan(context.Background(), open, int64(len(msg)))
				if err == nil && r.Infected {
					err = fmt.Errorf("infected: %s", r.Threat)
				}
				return err
			}},
		} {
			b.Run(fmt.Sprintf("%s/%dKB", eng.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(msg)))
				b.SetParallelism(2) // 2 × GOMAXPROCS concurrent scans
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := eng.scan(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
