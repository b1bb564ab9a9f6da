package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/message"
)

// BenchmarkAuth runs the spf, dkim and dmarc checks on a sample of the
// SpamAssassin corpus against a local test DNS server, with a warm cache.
// The corpus (2002) has no DKIM signatures, so every other message is
// signed with an RSA-2048 key, as most signed mail is today. One op is one
// message; msgs/s is reported per GOMAXPROCS (run with -cpu 1 for per core):
//
//	go test -run XXX -bench BenchmarkAuth -cpu 1 ./policy/auth/
func BenchmarkAuth(b *testing.B) {
	var files []string
	for _, d := range []string{"ham", "spam"} {
		fs, _ := filepath.Glob(filepath.Join(conformanceDir, "../corpus/spamassassin", d, "*.eml"))
		sort.Strings(fs)
		for i := 0; i < len(fs); i += 20 { // a 5% sample
			files = append(files, fs[i])
		}
	}
	if len(files) == 0 {
		b.Skip("corpus not found")
	}
	s, err := dnstest.StartServer()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	s.AddTXT("bench._domainkey.signer.example", 300, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub))
	seen := map[string]bool{}
	var msgs []*message.Message
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		raw := string(data)
		if strings.HasPrefix(raw, "From ") { // mbox separator line
			_, raw, _ = strings.Cut(raw, "\n")
		}
		m := msg("192.0.2.1", "mail.example", "", raw)
		mf := strings.Trim(m.Header.Get("Return-Path"), "<> ")
		if !strings.Contains(mf, "@") {
			mf = "bounce@sender.example"
		}
		m.MailFrom = mf
		if i%2 == 1 {
			var sb strings.Builder
			crlf := strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
			if err := dkim.Sign(&sb, strings.NewReader(crlf), &dkim.SignOptions{Domain: "signer.example", Selector: "bench", Signer: key}); err == nil {
				m = msg("192.0.2.1", "mail.example", mf, sb.String())
			}
		}
		for _, d := range append([]string{message.Domain(mf)}, fromDomainsOf(m)...) {
			if d != "" && !seen[d] {
				seen[d] = true
				s.AddTXT(d, 300, "v=spf1 ip4:192.0.2.0/24 -all")
				s.AddTXT("_dmarc."+d, 300, "v=DMARC1; p=none")
			}
		}
		msgs = append(msgs, m)
	}
	dc := dns.DefaultConfig()
	dc.Servers = []string{s.Addr}
	r, err := dns.New(dc)
	if err != nil {
		b.Fatal(err)
	}
	core := policy.DefaultConfig()
	core.TrustedNetworks = nil
	a := newAuth(DefaultConfig(), core, r, nil)
	checks := a.steps()
	runOne := func(m *message.Message) policy.Results {
		ctx := context.Background()
		prior := policy.Results{}
		for _, st := range checks[:2] { // spf and dkim: concurrently in the pipeline, sequential here
			res, err := st.Check.Check(ctx, m, nil)
			if err != nil {
				b.Fatal(err)
			}
			prior[st.Check.Name()] = res
		}
		res, err := checks[2].Check.Check(ctx, m, prior)
		if err != nil {
			b.Fatal(err)
		}
		prior["dmarc"] = res
		return prior
	}
	count := map[string]int{}
	for _, m := range msgs { // warm the cache, and check the work is real
		for n, r := range runOne(m) {
			count[n+"="+string(r.Status)]++
		}
	}
	if count["dkim=pass"] < len(msgs)/3 || count["spf=pass"] < len(msgs)/2 {
		b.Fatalf("statuses %v: the benchmark does not verify what it should", count)
	}
	b.Logf("%d messages: %v", len(msgs), count)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			runOne(msgs[i%len(msgs)])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(len(msgs)), "sample")
}

func fromDomainsOf(m *message.Message) []string {
	d, _, _ := FromDomains(m.Header)
	return d
}
