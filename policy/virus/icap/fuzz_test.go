package icap_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/virus/icap"
)

// FuzzReply sends a message to a server whose RESPMOD answer is the fuzz
// input: whatever it is, the client must not panic or hang, and may call
// the message clean only on a 204 or a 200.
func FuzzReply(f *testing.F) {
	body := "Subject: x\r\n\r\nhello\r\n"
	hdr := "HTTP/1.1 200 OK\r\nContent-Type: message/rfc822\r\n\r\n"
	for _, s := range []string{
		"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\nEncapsulated: null-body=0\r\n\r\n",
		"ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar;\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"ICAP/1.0 200 OK\r\nX-Violations-Found: 1\r\n\tf\r\n\tEICAR\r\n\t1\r\n\t2\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n",
		"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=" + itoa(len(hdr)) + "\r\n\r\n" + hdr + "15\r\n" + body + "\r\n0\r\n\r\n",
		"ICAP/1.0 100 Continue\r\n\r\nICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n",
		"ICAP/1.0 500 Server Error\r\nEncapsulated: null-body=0\r\n\r\n",
		"ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, res-hdr=5, res-body=7\r\n\r\n",
		"ICAP/1.0 204",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, reply string, preview bool) {
		options := "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n"
		if preview {
			options += "Preview: 4\r\n"
		}
		options += "\r\n"
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
			cl, sv := net.Pipe()
			go func() {
				br := bufio.NewReader(sv)
				go io.Copy(io.Discard, br)
				io.WriteString(sv, options+reply)
				sv.Close()
			}()
			return cl, nil
		}
		c, err := icap.New(icap.Options{Servers: []icap.Server{{Addr: "fuzz:1344", Service: "avscan"}}, Timeout: 2 * time.Second, Dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := c.Scan(context.Background(), func() io.Reader { return strings.NewReader(body) }, int64(len(body)))
		if time.Since(start) > 3*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
		if err == nil && !res.Infected {
			first, _, _ := strings.Cut(reply, "\r\n")
			if !strings.Contains(first, " 204") && !strings.Contains(first, " 200") && !strings.Contains(first, " 100") {
				t.Fatalf("clean verdict from %q", reply)
			}
		}
		if res.Infected && res.Threat == "" {
			t.Fatal("infected without a threat name")
		}
	})
}

// FuzzReadResponse: the header parser alone, with its invariants.
func FuzzReadResponse(f *testing.F) {
	f.Add("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=10\r\nX-Virus-ID: a\r\n b\r\n\r\n")
	f.Add("ICAP/1.0 204 No Content\r\n\r\n")
	f.Add("ICAP/1.0 200 OK\r\nEncapsulated: res-body=0, res-hdr=1\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := icap.ReadResponse(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		if r.Status < 100 || r.Status > 999 {
			t.Fatalf("status %d", r.Status)
		}
		for i, sec := range r.Encapsulated {
			if sec.IsBody() != (i == len(r.Encapsulated)-1) {
				t.Fatalf("body entry not last: %+v", r.Encapsulated)
			}
			if i > 0 && sec.Offset < r.Encapsulated[i-1].Offset {
				t.Fatalf("offsets decrease: %+v", r.Encapsulated)
			}
		}
		if name, ok := icap.Threat(r.Header, icap.ThreatHeaders); ok && (name == "" || strings.ContainsAny(name, "\r\n")) {
			t.Fatalf("threat name %q", name)
		}
	})
}

// FuzzChunked: the chunked decoder never yields more than it was given.
func FuzzChunked(f *testing.F) {
	f.Add("3\r\nabc\r\n0\r\n\r\n")
	f.Add("3;x=y\r\nabc\r\n0; ieof\r\n\r\n")
	f.Add("ffffffffffffffff\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		cr := icap.NewChunkedReader(bufio.NewReader(strings.NewReader(s)))
		var out bytes.Buffer
		_, err := io.Copy(&out, cr)
		if out.Len() > len(s) {
			t.Fatalf("%d bytes out of %d", out.Len(), len(s))
		}
		if err == nil && !strings.Contains(s, "0") {
			t.Fatalf("complete body without a last chunk: %q", s)
		}
	})
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
