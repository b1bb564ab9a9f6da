package rua

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const received = `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <report_id>1234567890</report_id>
    <date_range><begin>1764547200</begin><end>1764633599</end></date_range>
  </report_metadata>
  <policy_published><domain>receiver.example</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>192.0.2.10</source_ip><count>7</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>receiver.example</header_from></identifiers>
    <auth_results><dkim><domain>receiver.example</domain><result>pass</result></dkim><spf><domain>receiver.example</domain><result>fail</result></spf></auth_results>
  </record>
  <record>
    <row><source_ip>203.0.113.5</source_ip><count>2</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>Receiver.Example</header_from></identifiers>
    <auth_results><spf><domain>spoof.example</domain><result>none</result></spf></auth_results>
  </record>
  <record>
    <row><source_ip>192.0.2.10</source_ip><count>1</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>news.receiver.example</header_from></identifiers>
    <auth_results><spf><domain>receiver.example</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
`

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zipOf(files map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for name, b := range files {
		w, _ := zw.Create(name)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

func TestParseFormats(t *testing.T) {
	own, _ := Build(ident, sampleData()).XML()
	for name, data := range map[string][]byte{
		"plain.xml": []byte(received),
		"r.xml.gz":  gz([]byte(received)),
		"r.zip":     zipOf(map[string][]byte{"google.com!receiver.example!1!2.xml": []byte(received), "README.txt": []byte("x")}),
	} {
		fs, err := Parse(name, data)
		if err != nil || len(fs) != 1 {
			t.Fatalf("%s: %v (%d reports)", name, err, len(fs))
		}
		if fs[0].Metadata.OrgName != "google.com" || len(fs[0].Records) != 3 || fs[0].Records[0].Row.Count != 7 {
			t.Errorf("%s: %+v", name, fs[0])
		}
	}
	fs, err := Parse("two.zip", zipOf(map[string][]byte{"a.xml": []byte(received), "b.xml": own}))
	if err != nil || len(fs) != 2 {
		t.Fatalf("two reports in a zip: %v %d", err, len(fs))
	}
}

func TestParseRefuses(t *testing.T) {
	many := map[string][]byte{}
	for i := 0; i <= MaxZipFiles; i++ { // before limits shrink: the real bound
		many[fmt.Sprintf("%d.xml", i)] = []byte(received)
	}
	// Smaller bounds keep the bombs cheap to build; the mechanism is the
	// same at the real sizes.
	saved := limits
	t.Cleanup(func() { limits = saved })
	limits.input, limits.xml, limits.zipTotal = 1<<20, 4<<20, 6<<20
	padded := func(n int) []byte { // valid XML up to the bound: the decoder reads on
		return append(append([]byte("<feedback>"), bytes.Repeat([]byte(" "), n)...), "</feedback>"...)
	}
	bomb := gz(padded(4 << 20))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	fine := gz(padded(3 << 20))
	if _, err := Parse("fine", fine); err != nil {
		t.Fatalf("a report within the bounds: %v", err)
	}
	zipTotal := zipOf(map[string][]byte{"a.xml": padded(3 << 20), "b.xml": padded(3 << 20)})
	for name, tc := range map[string]struct {
		data   []byte
		tooBig bool
	}{
		"gzip bomb":      {bomb, true},
		"zip bomb":       {zipOf(map[string][]byte{"a.xml": padded(4 << 20)}), true},
		"zip total":      {zipTotal, true},
		"too many files": {zipOf(many), true},
		"huge input":     {make([]byte, 1<<20+1), true},
		"not xml":        {[]byte("hello"), false},
		"other root":     {[]byte("<html><body/></html>"), false},
		"truncated gzip": {gz([]byte(received))[:40], false},
		"empty zip":      {zipOf(nil), false},
		"bad count":      {[]byte(strings.Replace(received, "<count>7</count>", "<count>many</count>", 1)), false},
	} {
		_, err := Parse(name, tc.data)
		var pe *ParseError
		if err == nil || !errors.As(err, &pe) {
			t.Errorf("%s: err = %v", name, err)
			continue
		}
		if errors.Is(err, ErrTooLarge) != tc.tooBig {
			t.Errorf("%s: too large = %v: %v", name, errors.Is(err, ErrTooLarge), err)
		}
	}
}

func TestSummarize(t *testing.T) {
	f1, _ := Parse("a", []byte(received))
	f2, _ := Parse("b", []byte(received))
	s := Summarize(append(f1, f2...))
	if s.Reports != 2 || s.Messages != 20 || s.Pass != 16 || s.Fail != 4 {
		t.Fatalf("summary = %+v", s)
	}
	if len(s.Sources) != 2 || s.Sources[0].SourceIP != "192.0.2.10" || s.Sources[0].Pass != 16 || s.Sources[0].Fail != 0 ||
		s.Sources[1].SourceIP != "203.0.113.5" || s.Sources[1].Fail != 4 {
		t.Errorf("sources = %+v", s.Sources)
	}
	if strings.Join(s.Sources[0].HeaderFrom, ",") != "news.receiver.example,receiver.example" || strings.Join(s.Sources[1].HeaderFrom, ",") != "receiver.example" {
		t.Errorf("header from = %v %v", s.Sources[0].HeaderFrom, s.Sources[1].HeaderFrom)
	}
	var txt bytes.Buffer
	s.WriteText(&txt)
	if !strings.Contains(txt.String(), "2 reports from google.com on receiver.example: 20 messages, 16 pass, 4 fail") ||
		!strings.Contains(txt.String(), "203.0.113.5") {
		t.Errorf("text:\n%s", txt.String())
	}
	var js bytes.Buffer
	s.WriteJSON(&js)
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Fail != 4 || back.Sources[1].SourceIP != "203.0.113.5" {
		t.Errorf("json: %v\n%s", err, js.String())
	}
	// Hostile text cannot drive the terminal.
	evil, _ := Parse("e", []byte(strings.Replace(received, "<org_name>google.com", "<org_name>x\x1b[2Jy", 1)))
	txt.Reset()
	Summarize(evil).WriteText(&txt)
	if strings.ContainsRune(txt.String(), 0x1b) {
		t.Errorf("escape sequence in text output")
	}
}

func TestReadPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.xml"), []byte(received), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "b.xml.gz"), gz([]byte(received)), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "c.zip"), []byte("PK\x03\x04 broken"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	fs, errs := ReadPath(dir)
	if len(fs) != 2 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "c.zip") {
		t.Errorf("reports %d, errors %v", len(fs), errs)
	}
	fs, errs = ReadPath(filepath.Join(dir, "a.xml"))
	if len(fs) != 1 || len(errs) != 0 {
		t.Errorf("one file: %d %v", len(fs), errs)
	}
	if _, errs := ReadPath(filepath.Join(dir, "missing")); len(errs) != 1 {
		t.Errorf("missing path: %v", errs)
	}
}

func FuzzParse(f *testing.F) {
	own, _ := Build(ident, sampleData()).XML()
	f.Add([]byte(received))
	f.Add(own)
	f.Add(gz([]byte(received)))
	f.Add(zipOf(map[string][]byte{"a.xml": []byte(received)}))
	f.Add([]byte("<feedback><record><row><count>-5</count></row></record></feedback>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		for _, fb := range fs {
			if fb == nil {
				t.Fatal("nil report without error")
			}
		}
		s := Summarize(fs)
		if s.Pass+s.Fail != s.Messages || s.Pass < 0 || s.Fail < 0 {
			t.Fatalf("inconsistent summary %+v", s)
		}
		var b bytes.Buffer
		s.WriteText(&b)
		s.WriteJSON(&b)
	})
}
