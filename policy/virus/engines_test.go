package virus_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/virus"
	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/policy/virus/icap/icaptest"
	"github.com/mailwarden/mailwarden/policy/virus/sssp"
	"github.com/mailwarden/mailwarden/policy/virus/sssp/sssptest"
)

func TestICAPAndSSSPScanners(t *testing.T) {
	ifake := icaptest.Start(t, icaptest.Options{Preview: 1024, Signatures: map[string]string{eicar: "Eicar-ICAP"}})
	ibig := icaptest.Start(t, icaptest.Options{Preview: 10, PreviewVerdict: true})
	i500 := icaptest.Start(t, icaptest.Options{Preview: -1, Status: 500})
	sfake := sssptest.Start(t, sssptest.Options{Signatures: map[string]string{eicar: "EICAR-AV-Test"}, MaxScanData: 1 << 20})
	newICAP := func(url string, max int64) virus.Scanner {
		s, err := icap.ParseServer(url)
		if err != nil {
			t.Fatal(err)
		}
		c, err := icap.New(icap.Options{Servers: []icap.Server{s}, MaxSize: max, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return virus.NewICAP("icap:x", c)
	}
	s, _ := sssp.ParseServer(sfake.Addr())
	sc, _ := sssp.New(sssp.Options{Servers: []sssp.Server{s}})
	sophos := virus.NewSSSP("sssp:sophos", sc)
	small, bad, big := []byte("hello\r\n"), []byte("hello\r\n"+eicar+"\r\n"), bytes.Repeat([]byte("x"), 2<<20)
	for _, tc := range []struct {
		name string
		s    virus.Scanner
		msg  []byte
		want policy.Status
		sig  string
	}{
		{"icap clean", newICAP(ifake.URL(), 0), small, virus.StatusClean, ""},
		{"icap infected", newICAP(ifake.URL(), 0), bad, virus.StatusInfected, "Eicar-ICAP"},
		{"icap max_size", newICAP(ifake.URL(), 100), big, virus.StatusOversize, ""},
		{"icap server unscanned", newICAP(ibig.URL(), 0), big, virus.StatusOversize, ""},
		{"icap 500", newICAP(i500.URL(), 0), small, virus.StatusError, ""},
		{"sssp clean", sophos, small, virus.StatusClean, ""},
		{"sssp infected", sophos, bad, virus.StatusInfected, "EICAR-AV-Test"},
		{"sssp REJ 4", sophos, big, virus.StatusOversize, ""},
	} {
		f := tc.s.Scan(context.Background(), func() io.Reader { return bytes.NewReader(tc.msg) }, int64(len(tc.msg)))
		if f.Status != tc.want || f.Signature != tc.sig {
			t.Errorf("%s: %+v, want %s %q", tc.name, f, tc.want, tc.sig)
		}
	}
}
