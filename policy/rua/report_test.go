package rua

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// need returns the path of an external tool or file the test needs: it
// skips locally when it is missing and fails under CI=true.
func need(t *testing.T, what string, find func() (string, error)) string {
	t.Helper()
	p, err := find()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
	return ""
}

// schema returns the appendix C schema as Debian's libmail-dmarc-perl
// ships it (RUA_SCHEMA overrides the path), rewritten for unqualified
// elements: it declares targetNamespace "http://dmarc.org/dmarc-xml/0.1",
// but reports in the wild, Mail::DMARC's own among them, and every reader
// use a <feedback> root without a namespace, so we validate the structure
// with the namespace declaration removed.
func schema(t *testing.T) string {
	t.Helper()
	src := need(t, "rua-schema.xsd (libmail-dmarc-perl)", func() (string, error) {
		p := os.Getenv("RUA_SCHEMA")
		if p == "" {
			p = "/usr/share/perl5/auto/share/dist/Mail-DMARC/rua-schema.xsd"
		}
		_, err := os.Stat(p)
		return p, err
	})
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\s+targetNamespace="[^"]*"`)
	if !re.Match(b) {
		t.Fatalf("%s: no targetNamespace to remove: has the schema changed?", src)
	}
	out := filepath.Join(t.TempDir(), "rua-schema.xsd")
	if err := os.WriteFile(out, re.ReplaceAll(b, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// xmllint validates doc against the schema and returns its complaint.
func xmllint(t *testing.T, xsd string, doc []byte) error {
	t.Helper()
	bin := need(t, "xmllint (libxml2-utils)", func() (string, error) { return exec.LookPath("xmllint") })
	f := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--schema", xsd, f).CombinedOutput()
	if err != nil {
		return &xmlError{string(out)}
	}
	return nil
}

type xmlError struct{ out string }

func (e *xmlError) Error() string { return e.out }

var ident = Identity{OrgName: "Receiver Org", Submitter: "receiver.example", Email: "dmarc-noreply@receiver.example"}

// arcComment is the local_policy comment of an ARC override (RFC 8617
// §7.2.1), as policy/auth writes it.
const arcComment = "arc=pass as[2].d=list.example as[2].s=l1 as[1].d=forwarder.example as[1].s=f1 client-ip[1]=192.0.2.33"

// sampleData is a day with IPv4 and IPv6 sources, reasons, several DKIM
// tuples, a row without SPF tuple and a null envelope sender.
func sampleData() *Data {
	r1 := obs("192.0.2.1", day1).Row
	r2 := obs("2001:db8::25", day1).Row
	r2.DKIM, r2.SPF, r2.Disposition = ResultFail, ResultFail, DispositionNone
	r2.Reasons = []Reason{{OverrideLocalPolicy, arcComment}, {OverrideSampledOut, ""}}
	r2.DKIMAuth = []DKIMAuth{{"forwarder.example", "", DKIMPass}, {"example.com", "s1", DKIMFail}}
	r2.SPFAuth = []SPFAuth{{"forwarder.example", ScopeMFrom, SPFSoftfail}, {"mx.forwarder.example", ScopeHELO, SPFPass}}
	r3 := obs("198.51.100.3", day1).Row
	r3.EnvelopeFrom, r3.SPFAuth, r3.DKIMAuth = "", nil, nil
	r3.DKIM, r3.SPF, r3.Disposition = ResultFail, ResultFail, DispositionReject
	p := testPolicy()
	p.SP = DispositionQuarantine
	d := &Data{Domain: "example.com", Day: DayStart(day1), Policy: p, MaxRows: 10}
	d.Merge(&Data{Rows: []Counted{{r1, 5}, {r2, 2}, {r3, 1}}})
	return d
}

func TestReportValidatesAgainstSchema(t *testing.T) {
	xsd := schema(t)
	d := sampleData()
	f := Build(ident, d)
	doc, err := f.XML()
	if err != nil {
		t.Fatal(err)
	}
	if err := xmllint(t, xsd, doc); err != nil {
		t.Fatalf("report does not validate:\n%s\n%s", err, doc)
	}
	// RFC 8617 §7.2.1: the ARC override is a local_policy reason of
	// policy_evaluated, the chain in its comment.
	arcReason := regexp.MustCompile(`<policy_evaluated>(?:.|\n)*<reason>\s*<type>local_policy</type>\s*<comment>` + regexp.QuoteMeta(arcComment) + `</comment>\s*</reason>(?:.|\n)*</policy_evaluated>`)
	if !arcReason.Match(doc) {
		t.Errorf("no local_policy reason with the ARC chain:\n%s", doc)
	}
	if !bytes.Contains(doc, []byte("<source_ip>2001:0db8:0000:0000:0000:0000:0000:0025</source_ip>")) {
		t.Errorf("IPv6 source not in the schema's full form:\n%s", doc)
	}
	// A capped report validates too.
	d.NotItemised = 4
	capped, _ := Build(ident, d).XML()
	if err := xmllint(t, xsd, capped); err != nil {
		t.Fatalf("capped report does not validate:\n%s", err)
	}
	// The check can fail: a report without <sp> or with a bad disposition
	// is refused.
	for _, bad := range []string{"<sp>quarantine</sp>", "<disposition>none</disposition>"} {
		broken := bytes.Replace(doc, []byte(bad), []byte(strings.Replace(bad, ">", ">x", 1)), 1)
		if bad == "<sp>quarantine</sp>" {
			broken = bytes.Replace(doc, []byte(bad), nil, 1)
		}
		if err := xmllint(t, xsd, broken); err == nil {
			t.Errorf("xmllint accepted a report with %s broken", bad)
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	d := sampleData()
	rep, err := Gzip(ident, Build(ident, d))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Gzip(ident, Build(ident, sampleData()))
	if !bytes.Equal(rep.GZ, again.GZ) {
		t.Errorf("the same data gives different bytes")
	}
	fs, err := Parse("r.xml.gz", rep.GZ)
	if err != nil || len(fs) != 1 {
		t.Fatalf("parse own report: %v", err)
	}
	f := fs[0]
	if f.Metadata.ReportID != ReportID("receiver.example", "example.com", day1) || f.Policy.SP != "quarantine" || len(f.Records) != 3 {
		t.Errorf("parsed = %+v", f)
	}
	if f.Metadata.DateRange.Begin != 1796083200 || f.Metadata.DateRange.End != 1796169599 {
		t.Errorf("date range = %+v", f.Metadata.DateRange)
	}
	if rep.FileName() != "receiver.example!example.com!1796083200!1796169599!"+f.Metadata.ReportID+".xml.gz" {
		t.Errorf("file name = %s", rep.FileName())
	}
	if rep.Messages != 8 {
		t.Errorf("messages = %d", rep.Messages)
	}
}

func TestReportIDStable(t *testing.T) {
	a := ReportID("receiver.example", "example.com", day1)
	if a != ReportID("Receiver.Example", "EXAMPLE.com", day1.Add(5*3600e9)) {
		t.Errorf("same report, other id")
	}
	if a == ReportID("receiver.example", "example.com", day1.AddDate(0, 0, 1)) || a == ReportID("receiver.example", "example.org", day1) {
		t.Errorf("other report, same id")
	}
	if strings.ContainsAny(a, "! \t<>") {
		t.Errorf("id %q cannot be a file-name part", a)
	}
}

func TestComposedMessage(t *testing.T) {
	rep, _ := Gzip(ident, Build(ident, sampleData()))
	msg := rep.Compose("DMARC <dmarc-noreply@receiver.example>", "dmarc@example.com", day1)
	s := string(msg)
	for _, want := range []string{
		"Subject: Report Domain: example.com Submitter: receiver.example Report-ID: <" + rep.ID + ">\r\n",
		"Content-Type: application/gzip; name=\"" + rep.FileName() + "\"\r\n",
		"Content-Disposition: attachment; filename=\"" + rep.FileName() + "\"\r\n",
		"Auto-Submitted: auto-generated\r\n",
		"From: DMARC <dmarc-noreply@receiver.example>\r\n",
		"To: dmarc@example.com\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	for _, l := range strings.Split(s, "\r\n") {
		if len(l) > 998 {
			t.Fatalf("line longer than RFC 5322 allows")
		}
	}
	if !bytes.Equal(msg, rep.Compose("DMARC <dmarc-noreply@receiver.example>", "dmarc@example.com", day1)) {
		t.Errorf("composing is not deterministic")
	}
	// Our own report is recognised as a report by the loop guard, by its
	// subject and by its file name alone.
	if !IsReport("", []string{"multipart/mixed", "text/plain", "application/gzip"}, []string{rep.FileName()}) {
		t.Errorf("our file name is not recognised as a report")
	}
	if !IsReport(strings.TrimPrefix(regexp.MustCompile(`Subject: [^\r]*`).FindString(s), "Subject: "), nil, nil) {
		t.Errorf("our subject is not recognised as a report")
	}
}

// TestIndependentReader has libmail-dmarc-perl's receiver parse our mail
// (MIME, subject, file name, gzip, XML) and checks what it understood.
func TestIndependentReader(t *testing.T) {
	perl := need(t, "perl with Mail::DMARC (libmail-dmarc-perl)", func() (string, error) {
		p, err := exec.LookPath("perl")
		if err != nil {
			return "", err
		}
		return p, exec.Command(p, "-MMail::DMARC::Report::Receive", "-MJSON::PP", "-e", "1").Run()
	})
	d := sampleData()
	d.NotItemised = 2
	rep, _ := Gzip(ident, Build(ident, d))
	dir := t.TempDir()
	eml := filepath.Join(dir, "report.eml")
	os.WriteFile(eml, rep.Compose("dmarc-noreply@receiver.example", "dmarc@example.com", day1), 0o644)
	out := filepath.Join(dir, "got.json")
	cmd := exec.Command(perl, "testdata/read-report.pl", eml, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Mail::DMARC could not read our report: %v\n%s", err, b)
	}
	var got struct {
		Type     string   `json:"type"`
		ReportID string   `json:"report_id"`
		OrgName  string   `json:"org_name"`
		Domain   string   `json:"domain"`
		P        string   `json:"p"`
		Pct      int      `json:"pct"`
		Begin    int64    `json:"begin"`
		End      int64    `json:"end"`
		Errors   []string `json:"errors"`
		Records  []struct {
			SourceIP     string `json:"source_ip"`
			Count        int64  `json:"count"`
			Disposition  string `json:"disposition"`
			DKIM         string `json:"dkim"`
			SPF          string `json:"spf"`
			HeaderFrom   string `json:"header_from"`
			EnvelopeFrom string `json:"envelope_from"`
		} `json:"records"`
	}
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	recs := got
	if got.Type != "aggregate" || got.ReportID != rep.ID || got.OrgName != "Receiver Org" || got.Domain != "example.com" || got.P != "reject" || got.Pct != 100 {
		t.Errorf("reader saw %s", b)
	}
	if got.Begin != rep.Begin || got.End != rep.End || len(got.Errors) != 1 || !strings.Contains(got.Errors[0], "2 further messages") {
		t.Errorf("reader saw metadata %s", b)
	}
	if len(recs.Records) != 3 {
		t.Fatalf("reader saw %d records: %s", len(recs.Records), b)
	}
	var total int64
	ips := map[string]string{}
	for _, r := range recs.Records {
		total += r.Count
		ips[r.SourceIP] = r.Disposition + "/" + r.DKIM + "/" + r.SPF
	}
	if total != 8 || ips["192.0.2.1"] != "none/pass/pass" || ips["198.51.100.3"] != "reject/fail/fail" ||
		ips[netip.MustParseAddr("2001:db8::25").StringExpanded()] != "none/fail/fail" {
		t.Errorf("reader saw rows %v (total %d)", ips, total)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	x, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
