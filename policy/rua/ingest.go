package rua

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Bounds of Parse, against decompression bombs and oversized input.
const (
	MaxInput    = 32 << 20  // bytes of one file as given
	MaxXML      = 64 << 20  // bytes of one decompressed report
	MaxZipFiles = 16        // entries read from one zip
	MaxZipTotal = 128 << 20 // decompressed bytes of one zip
	MaxRecords  = 1_000_000 // records per report
)

// limits are the bounds in force (tests shrink them to keep bombs small).
var limits = struct{ input, xml, zipFiles, zipTotal, records int64 }{
	MaxInput, MaxXML, MaxZipFiles, MaxZipTotal, MaxRecords,
}

// ErrTooLarge says input exceeded a bound.
var ErrTooLarge = errors.New("rua: report too large")

// ParseError is a report that cannot be read.
type ParseError struct {
	Name string
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("rua: %s: %v", e.Name, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads the reports in data: XML, gzip-compressed XML or a zip of
// XML files (RFC 7489 §7.2.1.1 allows gzip; zip is the legacy format),
// told apart by their magic bytes. name is for errors only.
func Parse(name string, data []byte) ([]*Feedback, error) {
	if int64(len(data)) > limits.input {
		return nil, &ParseError{name, ErrTooLarge}
	}
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, &ParseError{name, err}
		}
		f, err := parseXML(&bounded{r: zr, left: limits.xml})
		if err != nil {
			return nil, &ParseError{name, err}
		}
		return []*Feedback{f}, nil
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, &ParseError{name, err}
		}
		var out []*Feedback
		var total int64
		n := 0
		for _, zf := range zr.File {
			if zf.FileInfo().IsDir() || !strings.HasSuffix(strings.ToLower(zf.Name), ".xml") {
				continue
			}
			if n++; int64(n) > limits.zipFiles {
				return out, &ParseError{name, fmt.Errorf("%w: more than %d files in zip", ErrTooLarge, limits.zipFiles)}
			}
			rc, err := zf.Open()
			if err != nil {
				return out, &ParseError{name + ":" + zf.Name, err}
			}
			// The declared size is not trusted: the read is bounded.
			br := &bounded{r: rc, left: min(limits.xml, limits.zipTotal-total)}
			f, err := parseXML(br)
			rc.Close()
			total += br.n
			if err != nil {
				return out, &ParseError{name + ":" + zf.Name, err}
			}
			out = append(out, f)
		}
		if len(out) == 0 {
			return nil, &ParseError{name, errors.New("no .xml file in zip")}
		}
		return out, nil
	default:
		f, err := parseXML(bytes.NewReader(data))
		if err != nil {
			return nil, &ParseError{name, err}
		}
		return []*Feedback{f}, nil
	}
}

func readBounded(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, max)
	}
	return b, nil
}

// bounded reads at most left bytes from r, then fails with ErrTooLarge.
type bounded struct {
	r    io.Reader
	left int64
	n    int64
}

func (b *bounded) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte would exceed the bound: is there one?
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, b.n)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	b.n += int64(n)
	return n, err
}

// parseXML decodes one report from r, streaming: a decompressed report is
// never held in memory as text.
func parseXML(r io.Reader) (*Feedback, error) {
	var f Feedback
	dec := xml.NewDecoder(r)
	// Reports are US-ASCII or UTF-8 in practice; other declared charsets
	// are read as UTF-8 rather than refused.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("not an aggregate report: %w", err)
	}
	if f.XMLName.Local != "feedback" {
		return nil, errors.New("not an aggregate report: root is not <feedback>")
	}
	if int64(len(f.Records)) > limits.records {
		return nil, fmt.Errorf("%w: more than %d records", ErrTooLarge, limits.records)
	}
	return &f, nil
}

// ReadPath parses a report file, or every .xml, .gz, .zip file below a
// directory. Unreadable files are returned as errors next to the
// reports that could be read.
func ReadPath(path string) ([]*Feedback, []error) {
	var out []*Feedback
	var errs []error
	read := func(p string) {
		fh, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		defer fh.Close()
		data, err := readBounded(fh, limits.input)
		if err != nil {
			errs = append(errs, &ParseError{p, err})
			return
		}
		fs, err := Parse(p, data)
		out = append(out, fs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, []error{err}
	}
	if !st.IsDir() {
		read(path)
		return out, errs
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		l := strings.ToLower(p)
		if d.Type().IsRegular() && (strings.HasSuffix(l, ".xml") || strings.HasSuffix(l, ".gz") || strings.HasSuffix(l, ".zip")) {
			read(p)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return out, errs
}

// SourceSummary is what received reports say about one sending IP.
type SourceSummary struct {
	SourceIP     string           `json:"source_ip"`
	Messages     int64            `json:"messages"`
	Pass         int64            `json:"pass"` // DMARC pass: aligned DKIM or SPF
	Fail         int64            `json:"fail"`
	HeaderFrom   []string         `json:"header_from"`
	Dispositions map[string]int64 `json:"dispositions"`
}

// Summary sums received reports per source.
type Summary struct {
	Reports   int             `json:"reports"`
	Reporters []string        `json:"reporters"`
	Domains   []string        `json:"domains"`
	Messages  int64           `json:"messages"`
	Pass      int64           `json:"pass"`
	Fail      int64           `json:"fail"`
	Sources   []SourceSummary `json:"sources"` // most messages first
}

// Summarize counts pass/fail per source IP over reports.
func Summarize(reports []*Feedback) *Summary {
	s := &Summary{Reports: len(reports)}
	bySrc := map[string]*SourceSummary{}
	hf := map[string]map[string]bool{}
	orgs, doms := map[string]bool{}, map[string]bool{}
	for _, f := range reports {
		orgs[f.Metadata.OrgName] = true
		doms[f.Policy.Domain] = true
		for _, rec := range f.Records {
			ip := strings.TrimSpace(rec.Row.SourceIP)
			n := rec.Row.Count
			// Bound hostile counts so that sums cannot overflow (at
			// most MaxRecords records of 2^40 each).
			n = max(0, min(n, 1<<40))
			src := bySrc[ip]
			if src == nil {
				src = &SourceSummary{SourceIP: ip, Dispositions: map[string]int64{}}
				bySrc[ip], hf[ip] = src, map[string]bool{}
			}
			src.Messages += n
			pe := rec.Row.PolicyEvaluated
			if strings.EqualFold(strings.TrimSpace(pe.DKIM), "pass") || strings.EqualFold(strings.TrimSpace(pe.SPF), "pass") {
				src.Pass += n
				s.Pass += n
			} else {
				src.Fail += n
				s.Fail += n
			}
			src.Dispositions[strings.TrimSpace(pe.Disposition)] += n
			hf[ip][strings.ToLower(strings.TrimSpace(rec.Identifiers.HeaderFrom))] = true
			s.Messages += n
		}
	}
	for ip, src := range bySrc {
		for h := range hf[ip] {
			src.HeaderFrom = append(src.HeaderFrom, h)
		}
		sort.Strings(src.HeaderFrom)
		s.Sources = append(s.Sources, *src)
	}
	sort.Slice(s.Sources, func(i, j int) bool {
		a, b := s.Sources[i], s.Sources[j]
		return a.Messages > b.Messages || (a.Messages == b.Messages && a.SourceIP < b.SourceIP)
	})
	s.Reporters, s.Domains = keys(orgs), keys(doms)
	return s
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteText prints the summary as a table.
func (s *Summary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%d reports from %s on %s: %d messages, %d pass, %d fail\n",
		s.Reports, clean(strings.Join(s.Reporters, ", ")), clean(strings.Join(s.Domains, ", ")), s.Messages, s.Pass, s.Fail)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tMESSAGES\tPASS\tFAIL\tHEADER FROM")
	for _, src := range s.Sources {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", clean(src.SourceIP), src.Messages, src.Pass, src.Fail, clean(strings.Join(src.HeaderFrom, ",")))
	}
	return tw.Flush()
}

// WriteJSON prints the summary as one JSON document.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// clean makes report text safe for a terminal: reports are hostile
// input, and control characters (escape sequences, tabs that break the
// table) are replaced.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
