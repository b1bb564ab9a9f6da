package autoreply

import (
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Kind is what an outbound message is, as far as auto-generation goes.
type Kind uint8

const (
	KindNone      Kind = iota // written by a person (as far as we can tell)
	KindReply                 // an automatic reply: vacation, out-of-office, autoresponder
	KindForward               // an automatic forward or redirect of a received message
	KindGenerated             // other automatic mail (notifications, null-sender reports)
)

var kindNames = [...]string{"none", "auto-reply", "forward", "auto-generated"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Recognition is what Recognize found: the kind and the markers that made
// it so (for the log).
type Recognition struct {
	Kind    Kind
	Markers []string
}

// subjectPrefixes are the subject lines that out-of-office software writes
// (Outlook/Exchange in several languages, Gmail, Zimbra, vacation(1)).
var subjectPrefixes = []string{
	"automatic reply:", "auto:", "autoreply:", "auto-reply:", "auto reply:", "out of office:",
	"out of office reply:", "out of the office:", "automatische antwort:", "abwesenheitsnotiz:",
	"réponse automatique :", "réponse automatique:", "respuesta automática:", "risposta automatica:",
	"automatisch antwoord:", "vacation reply:", "away from my mail",
}

// Recognize classifies a message by its header and envelope sender. local
// reports whether an address is ours (for Delivered-To / X-Original-To
// left by our own delivery). Forward markers win over reply markers: a
// forwarded auto-reply is still a forward.
func Recognize(h message.Header, mailFrom string, local func(addr string) bool) Recognition {
	var r Recognition
	mark := func(k Kind, m string) {
		r.Markers = append(r.Markers, m)
		// Precedence: forward > reply > generated.
		switch {
		case r.Kind == KindForward:
		case k == KindForward:
			r.Kind = k
		case r.Kind == KindReply:
		case k == KindReply || r.Kind == KindNone:
			r.Kind = k
		}
	}

	// Forwards and redirects.
	for _, f := range []string{"Resent-Message-ID", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Date"} {
		if h.Has(f) {
			// RFC 5322 §3.6.6: resent fields are added by a user (or
			// agent) reintroducing a message: a redirect.
			mark(KindForward, strings.ToLower(f))
			break
		}
	}
	if h.Has("X-Sieve-Redirected-From") {
		mark(KindForward, "x-sieve-redirected-from") // Pigeonhole redirect
	}
	for _, f := range []string{"X-MS-Exchange-Organization-AutoForwarded", "X-MS-Exchange-ForwardingLoop", "X-Forwarded-To", "X-Forwarded-For"} {
		if v := h.Get(f); v != "" && !strings.EqualFold(v, "false") {
			mark(KindForward, strings.ToLower(f))
		}
	}
	// Our own delivery stamps Delivered-To (Postfix local(8), Dovecot LDA)
	// and X-Original-To; leaving again with one naming a local mailbox
	// means a delivered message is being sent on: .forward through
	// sendmail(1), procmail "!", a mail client's redirect.
	if local != nil {
		for _, f := range []string{"Delivered-To", "X-Original-To"} {
			for _, v := range h.Values(f) {
				if a := addrOf(v); a != "" && local(a) {
					mark(KindForward, strings.ToLower(f))
					break
				}
			}
		}
	}

	// Automatic replies.
	// RFC 3834 §5: Auto-Submitted other than "no" marks automatic mail;
	// "auto-replied" is a response to a message.
	if v := strings.ToLower(h.Get("Auto-Submitted")); v != "" {
		// The keyword, without parameters or comments ("auto-replied (vacation)").
		kw := strings.TrimSpace(strings.SplitN(v, ";", 2)[0])
		if i := strings.IndexAny(kw, " \t("); i >= 0 {
			kw = kw[:i]
		}
		switch kw {
		case "no":
		case "auto-replied":
			mark(KindReply, "auto-submitted:auto-replied")
		case "auto-notified":
			mark(KindReply, "auto-submitted:auto-notified")
		default:
			if h.Has("In-Reply-To") {
				// Exchange writes auto-generated on its out-of-office
				// replies; a generated message answering one is a reply.
				mark(KindReply, "auto-submitted:"+kw+"+in-reply-to")
			} else {
				mark(KindGenerated, "auto-submitted:"+kw)
			}
		}
	}
	for _, f := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autoreply-From", "X-Mail-Autoreply", "X-Vacation"} {
		if v := strings.ToLower(h.Get(f)); v != "" && v != "no" && v != "false" {
			mark(KindReply, strings.ToLower(f))
		}
	}
	if h.Has("X-MS-Exchange-Inbox-Rules-Loop") {
		// Set on what an Exchange inbox rule sends: out-of-office replies
		// (answering a message) and forwards/redirects (not answering).
		if h.Has("In-Reply-To") {
			mark(KindReply, "x-ms-exchange-inbox-rules-loop")
		} else {
			mark(KindForward, "x-ms-exchange-inbox-rules-loop")
		}
	}
	if v := strings.ToLower(h.Get("X-Auto-Response-Suppress")); v != "" && h.Has("In-Reply-To") &&
		(strings.Contains(v, "all") || strings.Contains(v, "oof")) && hasAutoSubject(h.Get("Subject")) {
		mark(KindReply, "x-auto-response-suppress")
	}
	switch strings.ToLower(h.Get("Precedence")) {
	case "bulk", "junk", "auto_reply", "auto-reply":
		if h.Has("In-Reply-To") || h.Has("References") {
			mark(KindReply, "precedence:"+strings.ToLower(h.Get("Precedence")))
		} else {
			mark(KindGenerated, "precedence:"+strings.ToLower(h.Get("Precedence")))
		}
	}
	if hasAutoSubject(h.Get("Subject")) && (r.Kind != KindNone || mailFrom == "") {
		// A subject alone is too weak (a person may write "Auto: ..."); it
		// only confirms other markers or a null sender.
		mark(KindReply, "subject")
	}
	if mailFrom == "" {
		// RFC 3834 §3.3 / RFC 5230 §5.1: automatic responses go out with a
		// null return path; so do DSNs and MDNs (RFC 3461, RFC 8098).
		switch {
		case strings.Contains(strings.ToLower(h.Get("Content-Type")), "report-type"):
			mark(KindGenerated, "null-sender+report")
		case h.Has("In-Reply-To") || h.Has("References"):
			mark(KindReply, "null-sender+in-reply-to")
		default:
			mark(KindGenerated, "null-sender")
		}
	}
	return r
}

func hasAutoSubject(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range subjectPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// addrOf extracts the address from "Name <a@b>", "<a@b>" or "a@b".
func addrOf(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
		return ""
	}
	if f := strings.Fields(v); len(f) > 0 {
		return strings.Trim(f[0], "<>,;")
	}
	return ""
}

// msgIDs extracts the message identifiers ("<id@host>") from an
// In-Reply-To, References or Message-ID value (RFC 5322 §3.6.4). Comments
// and phrases between them are ignored.
func msgIDs(v string) []string {
	var ids []string
	for len(ids) < 100 {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		id := strings.TrimSpace(v[i+1 : i+j])
		if id != "" && !strings.ContainsAny(id, " \t") {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
	if len(ids) == 0 {
		// Some software writes bare identifiers.
		if t := strings.TrimSpace(v); t != "" && strings.Contains(t, "@") && !strings.ContainsAny(t, " \t<>") {
			ids = append(ids, t)
		}
	}
	return ids
}
