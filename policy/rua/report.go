package rua

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// Feedback is an aggregate report (RFC 7489 appendix C, element
// <feedback>), used both to write our reports and to read received ones.
type Feedback struct {
	XMLName  xml.Name    `xml:"feedback"`
	Version  string      `xml:"version,omitempty"`
	Metadata Metadata    `xml:"report_metadata"`
	Policy   PolicyXML   `xml:"policy_published"`
	Records  []RecordXML `xml:"record"`
}

// Metadata is <report_metadata>.
type Metadata struct {
	OrgName          string    `xml:"org_name"`
	Email            string    `xml:"email"`
	ExtraContactInfo string    `xml:"extra_contact_info,omitempty"`
	ReportID         string    `xml:"report_id"`
	DateRange        DateRange `xml:"date_range"`
	Errors           []string  `xml:"error,omitempty"`
}

// DateRange is <date_range>, in seconds since the epoch (UTC).
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// PolicyXML is <policy_published>.
type PolicyXML struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim,omitempty"`
	ASPF   string `xml:"aspf,omitempty"`
	P      string `xml:"p"`
	SP     string `xml:"sp"`
	Pct    string `xml:"pct"`
	FO     string `xml:"fo"`
}

// RecordXML is one <record>.
type RecordXML struct {
	Row         RowXML         `xml:"row"`
	Identifiers IdentifiersXML `xml:"identifiers"`
	AuthResults AuthResultsXML `xml:"auth_results"`
}

// RowXML is <row>.
type RowXML struct {
	SourceIP        string             `xml:"source_ip"`
	Count           int64              `xml:"count"`
	PolicyEvaluated PolicyEvaluatedXML `xml:"policy_evaluated"`
}

// PolicyEvaluatedXML is <policy_evaluated>.
type PolicyEvaluatedXML struct {
	Disposition string      `xml:"disposition"`
	DKIM        string      `xml:"dkim"`
	SPF         string      `xml:"spf"`
	Reasons     []ReasonXML `xml:"reason,omitempty"`
}

// ReasonXML is <reason>.
type ReasonXML struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
}

// IdentifiersXML is <identifiers>.
type IdentifiersXML struct {
	EnvelopeTo   string `xml:"envelope_to,omitempty"`
	EnvelopeFrom string `xml:"envelope_from"`
	HeaderFrom   string `xml:"header_from"`
}

// AuthResultsXML is <auth_results>.
type AuthResultsXML struct {
	DKIM []DKIMXML `xml:"dkim,omitempty"`
	SPF  []SPFXML  `xml:"spf"`
}

// DKIMXML is one <dkim> of <auth_results>.
type DKIMXML struct {
	Domain      string `xml:"domain"`
	Selector    string `xml:"selector,omitempty"`
	Result      string `xml:"result"`
	HumanResult string `xml:"human_result,omitempty"`
}

// SPFXML is one <spf> of <auth_results>.
type SPFXML struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope,omitempty"`
	Result string `xml:"result"`
}

// Reporter identity, as written into every report.
type Identity struct {
	// OrgName is the reporting organisation (<org_name>).
	OrgName string
	// Submitter is our domain, the "Submitter:" of the subject and the
	// first part of the file name (RFC 7489 §7.2.1.1).
	Submitter string
	// Email is the contact address (<email>) and, by default, the From.
	Email string
	// ExtraContactInfo is an optional URL or text.
	ExtraContactInfo string
}

// ReportID is the stable identifier of the report on dom for the UTC day
// of t: the same inputs always give the same ID, so a report rebuilt after
// a crash keeps its ID. It contains neither "!" nor white space (it is a
// file-name part).
func ReportID(submitter, dom string, t time.Time) string {
	s := sha256.Sum256([]byte(strings.ToLower(submitter) + "\x00" + strings.ToLower(dom) + "\x00" + day(t)))
	return day(t) + "." + hex.EncodeToString(s[:8])
}

// Build makes the report for d. A capped report says so in <error>.
func Build(id Identity, d *Data) *Feedback {
	begin := d.Day.Unix()
	f := &Feedback{
		Version: "1.0",
		Metadata: Metadata{
			OrgName:          id.OrgName,
			Email:            id.Email,
			ExtraContactInfo: id.ExtraContactInfo,
			ReportID:         ReportID(id.Submitter, d.Domain, d.Day),
			DateRange:        DateRange{Begin: begin, End: begin + 86400 - 1},
		},
		Policy: policyXML(d.Policy, d.Domain),
	}
	if d.NotItemised > 0 {
		f.Metadata.Errors = append(f.Metadata.Errors, fmt.Sprintf(
			"row limit reached: %d rows itemised, %d further messages not itemised (%d messages in total)",
			len(d.Rows), d.NotItemised, d.Messages()))
	}
	for _, c := range d.Rows {
		f.Records = append(f.Records, recordXML(c))
	}
	return f
}

func policyXML(p Policy, dom string) PolicyXML {
	if p.Domain == "" {
		p.Domain = dom
	}
	sp := p.SP
	if sp == "" {
		// RFC 7489 §6.3: absent sp= means p= applies to subdomains; the
		// schema requires <sp>.
		sp = p.P
	}
	fo := p.FO
	if fo == "" {
		fo = "0" // RFC 7489 §6.3 default
	}
	return PolicyXML{
		Domain: p.Domain, ADKIM: orDefault(p.ADKIM, "r"), ASPF: orDefault(p.ASPF, "r"),
		P: string(p.P), SP: string(sp), Pct: fmt.Sprint(p.Pct), FO: fo,
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func recordXML(c Counted) RecordXML {
	r := c.Row
	ip := r.SourceIP.Unmap()
	ips := ip.String()
	if ip.Is6() {
		// The appendix C schema only admits the uncompressed IPv6 form.
		ips = ip.StringExpanded()
	}
	rec := RecordXML{
		Row: RowXML{
			SourceIP: ips,
			Count:    c.Count,
			PolicyEvaluated: PolicyEvaluatedXML{
				Disposition: string(r.Disposition), DKIM: string(r.DKIM), SPF: string(r.SPF),
			},
		},
		Identifiers: IdentifiersXML{EnvelopeFrom: r.EnvelopeFrom, HeaderFrom: r.HeaderFrom},
	}
	for _, x := range r.Reasons {
		rec.Row.PolicyEvaluated.Reasons = append(rec.Row.PolicyEvaluated.Reasons, ReasonXML{string(x.Type), x.Comment})
	}
	for _, x := range r.DKIMAuth {
		rec.AuthResults.DKIM = append(rec.AuthResults.DKIM, DKIMXML{Domain: x.Domain, Selector: x.Selector, Result: string(x.Result)})
	}
	for _, x := range r.SPFAuth {
		rec.AuthResults.SPF = append(rec.AuthResults.SPF, SPFXML{Domain: x.Domain, Scope: string(x.Scope), Result: string(x.Result)})
	}
	if len(rec.AuthResults.SPF) == 0 {
		// Appendix C: "There will always be at least one SPF result."
		dom := r.EnvelopeFrom
		if dom == "" {
			dom = r.HeaderFrom
		}
		rec.AuthResults.SPF = []SPFXML{{Domain: dom, Scope: string(ScopeMFrom), Result: string(SPFNone)}}
	}
	return rec
}

// XML renders the report, with an XML declaration. The root element is
// unqualified <feedback>, as every report in the wild and every reader
// expects (Mail::DMARC looks for "/feedback").
func (f *Feedback) XML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("rua: report xml: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
