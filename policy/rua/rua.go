// Package rua collects, builds, sends and reads DMARC aggregate reports
// (RFC 7489 §7.2 and appendix C; the name is the DMARC tag of the
// aggregate-report destination).
//
// Collection: for every message whose DMARC policy record names rua=, the
// DMARC step hands an Observation to Collector.Record, which adds one to a
// counter per (policy domain, UTC day, row). A row is what appendix C
// reports per <record>: source IP, header_from, envelope_from, the
// disposition, DKIM and SPF alignment, the override reasons (local_policy
// from ARC, forwarded/mailing_list exemptions, sampled_out for pct=) and
// the uninterpreted DKIM (domain, selector, result) and SPF (domain,
// scope, result) tuples. Rows live in the shared state store (the small
// key-value interface Store, which policy/store's bolt and Redis stores
// satisfy) and expire on their own. The number of rows per domain and day
// is capped: messages beyond the cap are counted, and the report says in
// its <error> metadata how many were not itemised.
//
// Loops: mail to our own report addresses (whatever it carries), to
// configured exclusions, and incoming reports themselves (the RFC 7489
// §7.2.1.1 subject "Report Domain:", an attachment named like a report,
// an RFC 6591 failure report) is never counted, and our reports carry
// Auto-Submitted: auto-generated (RFC 3834).
//
// Sending: once a UTC day is over, Reporter.Run builds one report per
// policy domain (stable report ID), verifies each mailto: destination
// (RFC 7489 §7.1: same organizational domain, or a
// "<domain>._report._dmarc.<host>" TXT record starting v=DMARC1), honours
// "!size" limits (RFC 7489 §6.2; a short notice instead of a report that
// is too large), and hands the message (RFC 7489 §7.2.1.1) to the local
// MTA over SMTP. Each destination is a job in an outbox: pending → sent,
// or given up after three days. See outbox.go for the crash guarantee.
//
// Reading: Parse reads received reports (xml, gzip or zip) with bounds
// against decompression bombs, and Summarize counts pass/fail per source.
//
// This package depends on nothing else in mailwarden: the daemon wires it
// to the store, the resolver and the DMARC step.
package rua

import (
	"net/netip"
	"time"
)

// Disposition is the policy action applied (appendix C DispositionType).
type Disposition string

const (
	DispositionNone       Disposition = "none"
	DispositionQuarantine Disposition = "quarantine"
	DispositionReject     Disposition = "reject"
)

// Result is the DMARC-aligned result of one identifier (appendix C
// DMARCResultType).
type Result string

const (
	ResultPass Result = "pass"
	ResultFail Result = "fail"
)

// Override is why the disposition differs from the published policy
// (appendix C PolicyOverrideType).
type Override string

const (
	OverrideForwarded        Override = "forwarded"
	OverrideSampledOut       Override = "sampled_out"
	OverrideTrustedForwarder Override = "trusted_forwarder"
	OverrideMailingList      Override = "mailing_list"
	OverrideLocalPolicy      Override = "local_policy"
	OverrideOther            Override = "other"
)

// DKIMStatus is a DKIM verification result (appendix C DKIMResultType,
// RFC 8601 §2.7.1).
type DKIMStatus string

const (
	DKIMNone      DKIMStatus = "none"
	DKIMPass      DKIMStatus = "pass"
	DKIMFail      DKIMStatus = "fail"
	DKIMPolicy    DKIMStatus = "policy"
	DKIMNeutral   DKIMStatus = "neutral"
	DKIMTemperror DKIMStatus = "temperror"
	DKIMPermerror DKIMStatus = "permerror"
)

// SPFStatus is an SPF result (appendix C SPFResultType, RFC 7208 §2.6).
type SPFStatus string

const (
	SPFNone      SPFStatus = "none"
	SPFNeutral   SPFStatus = "neutral"
	SPFPass      SPFStatus = "pass"
	SPFFail      SPFStatus = "fail"
	SPFSoftfail  SPFStatus = "softfail"
	SPFTemperror SPFStatus = "temperror"
	SPFPermerror SPFStatus = "permerror"
)

// SPFScope is the identity SPF checked (appendix C SPFDomainScope).
type SPFScope string

const (
	ScopeHELO  SPFScope = "helo"
	ScopeMFrom SPFScope = "mfrom"
)

// Reason is one policy override reason of a row.
type Reason struct {
	Type    Override `json:"type"`
	Comment string   `json:"comment,omitempty"`
}

// DKIMAuth is one DKIM signature's uninterpreted result.
type DKIMAuth struct {
	Domain   string     `json:"d"`
	Selector string     `json:"s,omitempty"`
	Result   DKIMStatus `json:"r"`
}

// SPFAuth is one SPF check's uninterpreted result.
type SPFAuth struct {
	Domain string    `json:"d"`
	Scope  SPFScope  `json:"scope"`
	Result SPFStatus `json:"r"`
}

// Policy is the DMARC record actually used for a message, as reported in
// <policy_published>, plus its rua= URIs.
type Policy struct {
	Domain string      `json:"domain"` // where the record was found
	ADKIM  string      `json:"adkim"`  // "r" or "s"
	ASPF   string      `json:"aspf"`
	P      Disposition `json:"p"`
	SP     Disposition `json:"sp,omitempty"` // "" when absent: p applies
	Pct    int         `json:"pct"`
	FO     string      `json:"fo,omitempty"`
	RUA    []string    `json:"rua"`
}

// Row is the identity of one report <record>: messages with equal rows
// are counted together.
type Row struct {
	SourceIP     netip.Addr  `json:"ip"`
	HeaderFrom   string      `json:"hf"`
	EnvelopeFrom string      `json:"ef"`
	Disposition  Disposition `json:"disp"`
	DKIM         Result      `json:"dkim"` // aligned DKIM pass or not
	SPF          Result      `json:"spf"`  // aligned SPF pass or not
	Reasons      []Reason    `json:"reasons,omitempty"`
	DKIMAuth     []DKIMAuth  `json:"dkim_auth,omitempty"`
	SPFAuth      []SPFAuth   `json:"spf_auth,omitempty"`
}

// Observation is what the DMARC step tells the collector about one
// message.
type Observation struct {
	Time   time.Time // when the message was evaluated; its UTC day is the report day
	Policy Policy
	Row    Row
	// Recipients are the envelope recipients (RCPT TO).
	Recipients []string
	// Subject is the decoded Subject field, MediaTypes the media types of
	// the top-level entity and of its parts, FileNames the file names of
	// its parts: they recognise incoming reports (IsReport).
	Subject    string
	MediaTypes []string
	FileNames  []string
}

// day is the UTC day of t as a key component and its bounds.
func day(t time.Time) string { return t.UTC().Format("20060102") }

// DayStart is 00:00:00 UTC of t's day.
func DayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
