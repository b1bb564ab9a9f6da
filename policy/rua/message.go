package rua

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Report is one built report, ready to be mailed.
type Report struct {
	ID        string
	Domain    string // policy domain
	Submitter string
	Begin     int64
	End       int64
	GZ        []byte // the gzipped XML
	Messages  int64  // messages covered (itemised or not)
	Capped    bool
}

// Gzip builds a Report from a feedback document. The gzip header carries
// no name and no time, so the same report gives the same bytes.
func Gzip(id Identity, f *Feedback) (*Report, error) {
	x, err := f.XML()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(x)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("rua: gzip: %w", err)
	}
	r := &Report{
		ID: f.Metadata.ReportID, Domain: f.Policy.Domain, Submitter: id.Submitter,
		Begin: f.Metadata.DateRange.Begin, End: f.Metadata.DateRange.End,
		GZ: b.Bytes(), Capped: len(f.Metadata.Errors) > 0,
	}
	for _, rec := range f.Records {
		r.Messages += rec.Row.Count
	}
	return r, nil
}

// FileName is "submitter!domain!begin!end!id.xml.gz" (RFC 7489 §7.2.1.1).
func (r *Report) FileName() string {
	return fmt.Sprintf("%s!%s!%d!%d!%s.xml.gz", r.Submitter, r.Domain, r.Begin, r.End, r.ID)
}

// Subject is the RFC 7489 §7.2.1.1 subject.
func (r *Report) Subject() string {
	return fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", r.Domain, r.Submitter, r.ID)
}

// messageID is stable per report and destination, so a resent copy is
// recognisable as the same message.
func (r *Report) messageID(to string) string {
	s := sha256.Sum256([]byte(strings.ToLower(to)))
	return fmt.Sprintf("<%s.%s@%s>", r.ID, hex.EncodeToString(s[:4]), r.Submitter)
}

func boundary(id string) string {
	s := sha256.Sum256([]byte("boundary\x00" + id))
	return "=_rua_" + hex.EncodeToString(s[:12])
}

// Compose renders the report mail to one destination (RFC 7489
// §7.2.1.1): the subject above, a short text part and the gzipped XML as
// application/gzip, From from. It is deterministic given now.
func (r *Report) Compose(from, to string, now time.Time) []byte {
	var b bytes.Buffer
	bd := boundary(r.ID)
	r.headers(&b, from, to, now)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", bd)
	fmt.Fprintf(&b, "This is a DMARC aggregate report (RFC 7489) in MIME format.\r\n\r\n--%s\r\n", bd)
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	fmt.Fprintf(&b, "This is an aggregate report from %s for %s,\r\n", r.Submitter, r.Domain)
	fmt.Fprintf(&b, "%s to %s (UTC), %d messages.\r\n",
		time.Unix(r.Begin, 0).UTC().Format(time.RFC3339), time.Unix(r.End, 0).UTC().Format(time.RFC3339), r.Messages)
	if r.Capped {
		b.WriteString("The report hit its row limit; see <error> in its metadata.\r\n")
	}
	fn := r.FileName()
	fmt.Fprintf(&b, "\r\n--%s\r\n", bd)
	fmt.Fprintf(&b, "Content-Type: application/gzip; name=\"%s\"\r\n", fn)
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", fn)
	enc := base64.StdEncoding.EncodeToString(r.GZ)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", bd)
	return b.Bytes()
}

// Notice renders the short message sent instead of a report that exceeds
// a destination's "!size" limit (RFC 7489 §7.2.1.1: the Mail Receiver
// "SHOULD send a short report ... indicating that a report is available
// but could not be sent due to size limitations").
func (r *Report) Notice(from, to string, size, limit int64, now time.Time) []byte {
	var b bytes.Buffer
	r.headers(&b, from, to, now)
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	fmt.Fprintf(&b, "The DMARC aggregate report %s from %s for %s\r\n", r.ID, r.Submitter, r.Domain)
	fmt.Fprintf(&b, "(%s to %s UTC) is %d bytes, larger than the limit of %d bytes\r\n",
		time.Unix(r.Begin, 0).UTC().Format(time.RFC3339), time.Unix(r.End, 0).UTC().Format(time.RFC3339), size, limit)
	fmt.Fprintf(&b, "in your rua= URI <%s>, so it was not sent.\r\n", to)
	return b.Bytes()
}

func (r *Report) headers(b *bytes.Buffer, from, to string, now time.Time) {
	fmt.Fprintf(b, "From: %s\r\n", from)
	fmt.Fprintf(b, "To: %s\r\n", to)
	fmt.Fprintf(b, "Subject: %s\r\n", mime.QEncoding.Encode("us-ascii", r.Subject()))
	fmt.Fprintf(b, "Date: %s\r\n", now.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(b, "Message-ID: %s\r\n", r.messageID(to))
	// RFC 3834 §5: automatic responses must not trigger responses.
	b.WriteString("Auto-Submitted: auto-generated\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
}
