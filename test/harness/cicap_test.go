package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/virus/icap"
)

func TestStartCICAP(t *testing.T) {
	c := StartCICAP(t, CICAPOptions{})
	srv, err := icap.ParseServer(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := icap.New(icap.Options{Servers: []icap.Server{srv}})
	if err != nil {
		t.Fatal(err)
	}
	so, err := cl.Refresh(context.Background())
	if err != nil || len(so) != 1 {
		t.Fatalf("OPTIONS: %+v %v\n%s", so, err, c.Log())
	}
	t.Logf("c-icap OPTIONS: %+v", so[0])
	p, err := EICARFile()
	if err != nil {
		t.Fatal(err)
	}
	eicar, _ := os.ReadFile(p)
	msg := func(body string) []byte {
		return []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\n\r\n" + body)
	}
	scan := func(b []byte) (icap.Result, error) {
		return cl.Scan(context.Background(), func() io.Reader { return bytes.NewReader(b) }, int64(len(b)))
	}
	res, err := scan(msg("hello\r\n"))
	if err != nil || res.Infected {
		t.Fatalf("clean: %+v %v\n%s", res, err, c.Log())
	}
	res, err = scan(msg("text before\r\n" + strings.TrimSpace(string(eicar)) + "\r\n"))
	if err != nil || !res.Infected || !strings.Contains(res.Threat, BodySignatureName) {
		t.Fatalf("EICAR in the body: %+v %v\n%s", res, err, c.Log())
	}
	t.Logf("EICAR: %+v", res)
	// Larger than the preview (100 Continue, then the rest), with and
	// without a preview, on kept-alive connections.
	filler := strings.Repeat("filler line of text\r\n", 5000)
	for _, noPreview := range []bool{false, true} {
		cl2, _ := icap.New(icap.Options{Servers: []icap.Server{srv}, NoPreview: noPreview})
		for range 3 {
			b := msg(filler)
			res, err := cl2.Scan(context.Background(), func() io.Reader { return bytes.NewReader(b) }, int64(len(b)))
			if err != nil || res.Infected {
				t.Fatalf("noPreview=%v: clean %d bytes: %+v %v", noPreview, len(b), res, err)
			}
			b = msg(filler + strings.TrimSpace(string(eicar)) + "\r\n")
			res, err = cl2.Scan(context.Background(), func() io.Reader { return bytes.NewReader(b) }, int64(len(b)))
			if err != nil || !res.Infected {
				t.Fatalf("noPreview=%v: EICAR at the end of %d bytes: %+v %v", noPreview, len(b), res, err)
			}
		}
	}
}

// c-icap passes an object above its MaxObjectSize unscanned; the client
// must not read that as clean.
func TestCICAPMaxObjectSize(t *testing.T) {
	c := StartCICAP(t, CICAPOptions{MaxObjectSize: 64 << 10})
	p, err := EICARFile()
	if err != nil {
		t.Fatal(err)
	}
	eicar, _ := os.ReadFile(p)
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("filler line of text\r\n", 10000) + strings.TrimSpace(string(eicar)) + "\r\n")
	for _, noPreview := range []bool{false, true} {
		srv, _ := icap.ParseServer(c.URL())
		cl, _ := icap.New(icap.Options{Servers: []icap.Server{srv}, NoPreview: noPreview})
		res, err := cl.Scan(context.Background(), func() io.Reader { return bytes.NewReader(big) }, int64(len(big)))
		t.Logf("noPreview=%v: %+v %v", noPreview, res, err)
		if !errors.Is(err, icap.ErrUnscanned) || res.Infected {
			t.Errorf("noPreview=%v: a %d-byte infected message above MaxObjectSize: %+v %v, want ErrUnscanned", noPreview, len(big), res, err)
		}
	}
	c.Stop()
	srv, _ := icap.ParseServer(c.URL())
	cl, _ := icap.New(icap.Options{Servers: []icap.Server{srv}})
	if _, err := cl.Scan(context.Background(), func() io.Reader { return bytes.NewReader(big) }, int64(len(big))); err == nil {
		t.Error("c-icap stopped: no error")
	} else {
		t.Logf("stopped: %v", err)
	}
}
