// Package audit checks a Postfix configuration (the output of `postconf
// -n`, or main.cf) together with mailwarden's own config against the
// guidance for secure operation of a mail server. Each Finding has a
// severity and a fix. It covers:
//
//   - open-relay risk: mynetworks wider than needed, relay restrictions
//     without reject_unauth_destination (RFC 5321 §3.6.2, RFC 2505 §2.1);
//   - milter wiring: smtpd_milters and non_smtpd_milters point at our
//     [listen] address; milter_default_action fails closed;
//   - postmaster (RFC 5321 §4.5.1) and abuse (RFC 2142 §4) aliases exist;
//   - message_size_limit against our max_message_size;
//   - TLS: STARTTLS offered and used (RFC 3207), old protocol versions off
//     (RFC 8996: TLS 1.0 and 1.1 are deprecated), no AUTH without TLS;
//   - queue_minfree and the spool guard.
//
// Postfix defaults for parameters that `postconf -n` does not list are
// those of Postfix 3.7 (Debian 12).
package audit

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mailwarden/mailwarden/policy"
)

// Severity ranks findings.
type Severity int

const (
	SevOK       Severity = iota // checked, fine (shown with -v)
	SevInfo                     // worth knowing
	SevWarning                  // weakens protection
	SevCritical                 // mail can be abused or lost
)

var sevNames = [...]string{"ok", "info", "warning", "critical"}

func (s Severity) String() string {
	if int(s) < len(sevNames) {
		return sevNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one result of the audit.
type Finding struct {
	ID       string   `json:"id"` // stable: open-relay, mynetworks-wide, milter-smtpd, ...
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// MainCF is a Postfix parameter set.
type MainCF map[string]string

// ParseMainCF reads main.cf syntax (also what `postconf -n` prints):
// "name = value", continuation lines start with white space, "#" starts a
// comment line.
func ParseMainCF(r io.Reader) (MainCF, error) {
	m := MainCF{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	last := ""
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("audit: line %d: continuation without a parameter", n)
			}
			m[last] = strings.TrimSpace(m[last] + " " + t)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("audit: line %d: want name = value", n)
		}
		last = strings.TrimSpace(k)
		if last == "" || strings.ContainsAny(last, " \t") {
			return nil, fmt.Errorf("audit: line %d: bad parameter name %q", n, last)
		}
		m[last] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return m, nil
}

// defaults are Postfix 3.7 defaults of the parameters we read.
var defaults = MainCF{
	"mynetworks_style":             "host", // compatibility_level >= 2
	"smtpd_relay_restrictions":     "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
	"milter_default_action":        "tempfail",
	"message_size_limit":           "10240000",
	"queue_minfree":                "0",
	"alias_maps":                   "hash:/etc/aliases",
	"smtpd_tls_security_level":     "",
	"smtp_tls_security_level":      "",
	"smtpd_tls_protocols":          "!SSLv2, !SSLv3",
	"smtpd_tls_auth_only":          "no",
	"smtpd_sasl_auth_enable":       "no",
	"queue_directory":              "/var/spool/postfix",
	"smtpd_recipient_restrictions": "",
}

// Get returns a parameter with $name and ${name} expanded, or the Postfix
// default; set reports whether the file sets it.
func (m MainCF) Get(name string) (v string, set bool) {
	v, set = m[name]
	if !set {
		v = defaults[name]
	}
	return m.expand(v, 0), set
}

func (m MainCF) expand(v string, depth int) string {
	if depth > 10 || !strings.Contains(v, "$") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '$' || i+1 >= len(v) {
			b.WriteByte(v[i])
			continue
		}
		j := i + 1
		var name string
		if v[j] == '{' || v[j] == '(' {
			end := strings.IndexAny(v[j:], "})")
			if end < 0 {
				b.WriteString(v[i:])
				break
			}
			name = v[j+1 : j+end]
			i = j + end
		} else {
			k := j
			for k < len(v) && (v[k] == '_' || v[k] >= 'a' && v[k] <= 'z' || v[k] >= 'A' && v[k] <= 'Z' || v[k] >= '0' && v[k] <= '9') {
				k++
			}
			name = v[j:k]
			i = k - 1
		}
		if strings.ContainsAny(name, "?:") { // ${name?value} conditionals: not evaluated
			continue
		}
		x, ok := m[name]
		if !ok {
			x = defaults[name]
		}
		b.WriteString(m.expand(x, depth+1))
	}
	return b.String()
}

// list splits a Postfix list value (commas and/or white space); a
// "{ ... }" group stays one item.
func list(v string) []string {
	var out []string
	depth := 0
	cur := strings.Builder{}
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for _, r := range v {
		switch {
		case r == '{':
			depth++
			cur.WriteRune(r)
		case r == '}':
			depth--
			cur.WriteRune(r)
			if depth == 0 {
				flush()
			}
		case depth == 0 && (r == ',' || r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

// Input is what the audit reads.
type Input struct {
	Postfix MainCF
	Config  *policy.Config
	// ReadFile reads alias files (default os.ReadFile); injectable for tests.
	ReadFile func(string) ([]byte, error)
	// RelayGuard and SpoolDirs describe our [relay] and [spool] sections
	// (nil SpoolDirs: the spool guard is off).
	RelayGuard bool
	SpoolDirs  []string
	// Listen is our milter socket ([listen] address).
	Listen string
}

// Run audits and returns the findings, most severe first.
func Run(in Input) []Finding {
	if in.ReadFile == nil {
		in.ReadFile = os.ReadFile
	}
	if in.Config == nil {
		in.Config = policy.DefaultConfig()
	}
	a := &auditor{in: in, pf: in.Postfix}
	a.mynetworks()
	a.relay()
	a.milters()
	a.aliases()
	a.size()
	a.tls()
	a.queue()
	sort.SliceStable(a.out, func(i, j int) bool { return a.out[i].Severity > a.out[j].Severity })
	return a.out
}

type auditor struct {
	in  Input
	pf  MainCF
	out []Finding
}

func (a *auditor) add(id string, sev Severity, fix, format string, args ...any) {
	a.out = append(a.out, Finding{ID: id, Severity: sev, Message: fmt.Sprintf(format, args...), Fix: fix})
}

func (a *auditor) mynetworks() {
	v, set := a.pf.Get("mynetworks")
	if !set {
		style, _ := a.pf.Get("mynetworks_style")
		switch style {
		case "subnet", "class":
			a.add("mynetworks-wide", SevWarning, "set mynetworks = 127.0.0.0/8 [::1]/128 plus your own servers", "mynetworks_style = %s trusts every host of this machine's %s to relay", style, style)
		default:
			a.add("mynetworks", SevOK, "", "mynetworks not set: only this host may relay (mynetworks_style = %s)", style)
		}
		return
	}
	worst := SevOK
	for _, item := range list(v) {
		p, err := netip.ParsePrefix(strings.NewReplacer("[", "", "]", "").Replace(item))
		if err != nil {
			addr, err2 := netip.ParseAddr(strings.Trim(item, "[]"))
			if err2 != nil {
				if strings.HasPrefix(item, "/") || strings.Contains(item, ":/") {
					a.add("mynetworks-table", SevInfo, "", "mynetworks reads %s; its entries were not checked", item)
				} else {
					a.add("mynetworks-entry", SevInfo, "", "mynetworks entry %q is not an address or network (not checked)", item)
				}
				continue
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		addr := p.Addr()
		wide := (addr.Is4() && p.Bits() < 24) || (!addr.Is4() && p.Bits() < 48)
		switch {
		case p.Bits() == 0:
			a.add("open-relay", SevCritical, "remove "+item+" from mynetworks; list only this host and your own servers", "mynetworks contains %s: every host on the internet may relay (open relay)", item)
			worst = max(worst, SevCritical)
		case !addr.IsPrivate() && !addr.IsLoopback() && wide:
			a.add("mynetworks-wide", SevCritical, "narrow "+item+" to the addresses of your own servers", "mynetworks contains the public network %s: every host in it may relay without authentication", item)
			worst = max(worst, SevCritical)
		case (addr.IsPrivate() && addr.Is4() && p.Bits() < 16) || (addr.IsPrivate() && !addr.Is4() && p.Bits() < 48):
			a.add("mynetworks-wide", SevWarning, "narrow "+item+" to the subnets that really submit mail", "mynetworks contains the wide private network %s: any compromised host in it may relay", item)
			worst = max(worst, SevWarning)
		}
	}
	if worst == SevOK {
		a.add("mynetworks", SevOK, "", "mynetworks is narrow: %s", v)
	}
}

func (a *auditor) relay() {
	rel, relSet := a.pf.Get("smtpd_relay_restrictions")
	rcpt, _ := a.pf.Get("smtpd_recipient_restrictions")
	guarded := func(v string) (ok bool, permitFirst bool) {
		for _, t := range list(v) {
			switch t {
			// Postfix accepts these as "working instances" too: what is not
			// permitted before them is refused.
			case "reject_unauth_destination", "defer_unauth_destination", "reject", "defer", "defer_if_permit", "check_relay_domains":
				return true, false
			case "permit":
				return false, true
			}
		}
		return false, false
	}
	relOK, relPermit := guarded(rel)
	rcptOK, rcptPermit := guarded(rcpt)
	switch {
	case relPermit || (!relOK && rcptPermit):
		a.add("open-relay", SevCritical, "put reject_unauth_destination before any bare permit: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
			"a bare permit comes before reject_unauth_destination in the relay restrictions: anyone may relay (open relay)")
	case !relOK && !rcptOK:
		a.add("open-relay", SevCritical, "set smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
			"neither smtpd_relay_restrictions (%q) nor smtpd_recipient_restrictions contains reject_unauth_destination: the server may relay for anyone", rel)
	case !relSet:
		a.add("relay-restrictions", SevOK, "", "smtpd_relay_restrictions: Postfix default (%s)", rel)
	default:
		a.add("relay-restrictions", SevOK, "", "relay restrictions refuse unauthorised destinations")
	}
	if !a.in.RelayGuard {
		a.add("relay-guard", SevInfo, "enable [relay] in mailwarden.toml", "mailwarden's relay guard is off: no second line of defence against a relay misconfiguration")
	} else if len(a.in.Config.LocalDomains) == 0 {
		a.add("relay-guard", SevWarning, "set local_domains in mailwarden.toml (the domains of mydestination, virtual_mailbox_domains, relay_domains)", "local_domains is empty, so mailwarden's relay guard cannot tell local from foreign recipients")
	}
}

// milterMatches reports whether a Postfix milter entry reaches our listen
// address. Postfix writes inet:host:port or unix:path; a unix path is
// relative to the queue directory when smtpd runs chrooted.
func milterMatches(entry, listen, queueDir string) bool {
	entry = strings.TrimSpace(strings.Trim(entry, "{}"))
	if i := strings.IndexByte(entry, ','); i >= 0 { // { inet:..., default_action=accept }
		entry = strings.TrimSpace(entry[:i])
	}
	switch {
	case strings.HasPrefix(listen, "unix:"):
		want := filepath.Clean(strings.TrimPrefix(listen, "unix:"))
		var got string
		switch {
		case strings.HasPrefix(entry, "unix:"):
			got = strings.TrimPrefix(entry, "unix:")
		case strings.HasPrefix(entry, "/"):
			got = entry
		default:
			return false
		}
		if !strings.HasPrefix(got, "/") {
			got = queueDir + "/" + got
		}
		got = filepath.Clean(got)
		// QUIRK(postfix): a chrooted smtpd sees /var/spool/postfix/x as /x.
		return got == want || filepath.Clean(queueDir+"/"+got) == want
	case strings.HasPrefix(listen, "inet:"), strings.HasPrefix(listen, "inet6:"):
		want := strings.TrimPrefix(strings.TrimPrefix(listen, "inet6:"), "inet:")
		got := strings.TrimPrefix(strings.TrimPrefix(entry, "inet6:"), "inet:")
		if got == entry && !strings.HasPrefix(entry, "inet") {
			return false
		}
		wh, wp := splitHostPort(want)
		gh, gp := splitHostPort(got)
		return wp == gp && (wh == gh || isLoopback(wh) && isLoopback(gh))
	}
	return false
}

func splitHostPort(s string) (string, string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, ""
	}
	return strings.Trim(s[:i], "[]"), s[i+1:]
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func (a *auditor) milters() {
	listen := a.in.Listen
	qdir, _ := a.pf.Get("queue_directory")
	for _, p := range []struct{ param, what string }{
		{"smtpd_milters", "mail received over SMTP"},
		{"non_smtpd_milters", "mail submitted with sendmail(1) on this host"},
	} {
		v, _ := a.pf.Get(p.param)
		found := false
		for _, e := range list(v) {
			if milterMatches(e, listen, qdir) {
				found = true
			}
		}
		sev := SevCritical
		if p.param == "non_smtpd_milters" {
			sev = SevWarning
		}
		if !found {
			a.add("milter-"+strings.TrimSuffix(p.param, "_milters"), sev, fmt.Sprintf("%s = %s", p.param, postfixMilter(listen, qdir)),
				"%s does not point at mailwarden (%s): %s is not filtered", p.param, listen, p.what)
		} else {
			a.add("milter-"+strings.TrimSuffix(p.param, "_milters"), SevOK, "", "%s points at mailwarden", p.param)
		}
	}
	act, _ := a.pf.Get("milter_default_action")
	switch act {
	case "accept":
		a.add("milter-default-action", SevWarning, "milter_default_action = tempfail",
			"milter_default_action = accept: while mailwarden is down or slow, mail is delivered unchecked (unscanned malware)")
	case "tempfail", "reject", "quarantine":
		a.add("milter-default-action", SevOK, "", "milter_default_action = %s fails closed", act)
	default:
		a.add("milter-default-action", SevInfo, "milter_default_action = tempfail", "milter_default_action = %q is unusual", act)
	}
}

// postfixMilter is how Postfix should name our listen address.
func postfixMilter(listen, qdir string) string {
	if strings.HasPrefix(listen, "unix:") {
		p := strings.TrimPrefix(listen, "unix:")
		if strings.HasPrefix(p, qdir+"/") {
			return "unix:" + strings.TrimPrefix(p, qdir) // chroot-relative
		}
		return listen
	}
	return listen
}

func (a *auditor) aliases() {
	maps, _ := a.pf.Get("alias_maps")
	vmaps, _ := a.pf.Get("virtual_alias_maps")
	var texts []string
	var unread []string
	for _, src := range append(list(maps), list(vmaps)...) {
		typ, path, ok := strings.Cut(src, ":")
		if !ok {
			continue
		}
		switch typ {
		case "hash", "btree", "lmdb", "cdb", "dbm", "texthash", "regexp", "pcre", "inline", "static":
		default:
			unread = append(unread, src)
			continue
		}
		if typ == "inline" {
			texts = append(texts, strings.ReplaceAll(strings.Trim(path, "{}"), ",", "\n"))
			continue
		}
		b, err := a.in.ReadFile(path)
		if err != nil {
			unread = append(unread, src)
			continue
		}
		texts = append(texts, string(b))
	}
	for _, want := range []struct {
		name string
		sev  Severity
		rfc  string
	}{{"postmaster", SevCritical, "RFC 5321 §4.5.1"}, {"abuse", SevWarning, "RFC 2142 §4"}} {
		if hasAlias(texts, want.name) {
			a.add("alias-"+want.name, SevOK, "", "%s alias found", want.name)
			continue
		}
		sev := want.sev
		msg := fmt.Sprintf("no %s alias found in alias_maps/virtual_alias_maps (%s requires the address)", want.name, want.rfc)
		if len(texts) == 0 && len(unread) > 0 {
			sev, msg = SevInfo, fmt.Sprintf("could not read %s to look for the %s alias", strings.Join(unread, ", "), want.name)
		}
		a.add("alias-"+want.name, sev, fmt.Sprintf("add \"%s: root\" (or a person) to /etc/aliases and run newaliases", want.name), "%s", msg)
	}
}

// hasAlias looks for "name:" (aliases(5)) or "name@..." / "/^name@/"
// (virtual(5), regexp tables) at the start of a line.
func hasAlias(texts []string, name string) bool {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			l = strings.ToLower(strings.TrimSpace(l))
			l = strings.TrimLeft(l, "/^")
			if strings.HasPrefix(l, name+":") || strings.HasPrefix(l, name+"@") || strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"\t") || strings.HasPrefix(l, name+"=") {
				return true
			}
		}
	}
	return false
}

func (a *auditor) size() {
	v, _ := a.pf.Get("message_size_limit")
	limit, err := strconv.ParseInt(v, 10, 64)
	ours := int64(a.in.Config.MaxMessageSize)
	switch {
	case err != nil:
		a.add("message-size", SevInfo, "", "message_size_limit = %q is not a number", v)
	case limit == 0:
		a.add("message-size", SevWarning, fmt.Sprintf("message_size_limit = %d (our max_message_size)", ours),
			"message_size_limit = 0 (no limit): messages above mailwarden's max_message_size (%d) are refused unscanned by mailwarden, and the queue can be filled with one message", ours)
	case ours < limit:
		a.add("message-size", SevWarning, fmt.Sprintf("set max_message_size >= %d in mailwarden.toml, or lower message_size_limit", limit),
			"max_message_size (%d) is below message_size_limit (%d): messages in between are accepted by Postfix but get mailwarden's max_message_size_action", ours, limit)
	default:
		a.add("message-size", SevOK, "", "message_size_limit (%d) <= max_message_size (%d)", limit, ours)
	}
}

func (a *auditor) tls() {
	in, _ := a.pf.Get("smtpd_tls_security_level")
	if in == "" {
		if b, _ := a.pf.Get("smtpd_use_tls"); b == "yes" {
			in = "may"
		}
	}
	switch in {
	case "may", "encrypt":
		a.add("tls-smtpd", SevOK, "", "smtpd offers STARTTLS (smtpd_tls_security_level = %s)", in)
		cert, _ := a.pf.Get("smtpd_tls_cert_file")
		chain, _ := a.pf.Get("smtpd_tls_chain_files")
		if cert == "" && chain == "" {
			a.add("tls-cert", SevWarning, "set smtpd_tls_chain_files = /etc/postfix/key-and-chain.pem", "STARTTLS is enabled but no certificate is configured (smtpd_tls_cert_file, smtpd_tls_chain_files)")
		}
	default:
		a.add("tls-smtpd", SevWarning, "smtpd_tls_security_level = may, with smtpd_tls_chain_files", "smtpd does not offer STARTTLS (smtpd_tls_security_level = %q): mail arrives in clear (RFC 3207)", in)
	}
	out, _ := a.pf.Get("smtp_tls_security_level")
	if out == "" {
		if b, _ := a.pf.Get("smtp_use_tls"); b == "yes" {
			out = "may"
		}
	}
	switch out {
	case "may", "encrypt", "dane", "dane-only", "verify", "secure", "fingerprint":
		a.add("tls-smtp", SevOK, "", "outbound smtp uses TLS (smtp_tls_security_level = %s)", out)
	default:
		a.add("tls-smtp", SevWarning, "smtp_tls_security_level = may (or dane with a DNSSEC resolver)", "outbound mail is sent in clear (smtp_tls_security_level = %q)", out)
	}
	protos, _ := a.pf.Get("smtpd_tls_protocols")
	p := strings.ReplaceAll(protos, " ", "")
	old := !(strings.Contains(p, ">=TLSv1.2") || strings.Contains(p, ">=TLSv1.3") || strings.Contains(p, "!TLSv1,") && strings.Contains(p, "!TLSv1.1") || strings.HasSuffix(p, "!TLSv1") && strings.Contains(p, "!TLSv1.1"))
	if old {
		a.add("tls-protocols", SevWarning, "smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = >=TLSv1.2", "smtpd_tls_protocols (%q) still allows TLS 1.0/1.1 (deprecated by RFC 8996)", protos)
	} else {
		a.add("tls-protocols", SevOK, "", "smtpd_tls_protocols = %s", protos)
	}
	if sasl, _ := a.pf.Get("smtpd_sasl_auth_enable"); sasl == "yes" {
		if only, _ := a.pf.Get("smtpd_tls_auth_only"); only != "yes" {
			a.add("tls-auth-only", SevWarning, "smtpd_tls_auth_only = yes", "SASL AUTH is offered without TLS: passwords can cross the network in clear")
		}
	}
}

func (a *auditor) queue() {
	v, _ := a.pf.Get("queue_minfree")
	minfree, err := strconv.ParseInt(v, 10, 64)
	lim, _ := a.pf.Get("message_size_limit")
	limit, _ := strconv.ParseInt(lim, 10, 64)
	switch {
	case err != nil:
		a.add("queue-minfree", SevInfo, "", "queue_minfree = %q is not a number", v)
	case minfree == 0:
		a.add("queue-minfree", SevWarning, fmt.Sprintf("queue_minfree = %d (several times message_size_limit, and at least 100 MB)", max(4*limit, 100<<20)),
			"queue_minfree = 0: Postfix refuses mail only when less than 1.5 × message_size_limit is free; a full queue disk stops all mail, including bounces")
	case limit > 0 && minfree < limit*3/2:
		a.add("queue-minfree", SevWarning, fmt.Sprintf("queue_minfree = %d", 4*limit), "queue_minfree (%d) is below 1.5 × message_size_limit (%d)", minfree, limit)
	default:
		a.add("queue-minfree", SevOK, "", "queue_minfree = %d", minfree)
	}
	qdir, _ := a.pf.Get("queue_directory")
	if a.in.SpoolDirs == nil {
		a.add("spool-guard", SevInfo, "enable [spool] with dirs = [\""+qdir+"\"]", "mailwarden's spool guard is off")
		return
	}
	for _, d := range a.in.SpoolDirs {
		if filepath.Clean(d) == filepath.Clean(qdir) {
			a.add("spool-guard", SevOK, "", "the spool guard watches %s", qdir)
			return
		}
	}
	a.add("spool-guard", SevInfo, fmt.Sprintf("[spool] dirs = [\"%s\", ...]", qdir), "the spool guard does not watch Postfix's queue directory %s", qdir)
}
