package autoreply

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Forwarders knows which local addresses Postfix itself forwards off-site:
// through aliases(5) or virtual(5) tables, whose expansion happens after
// the milter has seen the message (and the forwarded copy is re-injected
// without milter inspection), so mailwarden must decide on the inbound
// message (rule 5).
type Forwarders struct {
	aliases map[string][]string // local part → targets (aliases(5))
	virtual map[string][]string // address, or "@domain" → targets (virtual(5))
	listed  map[string]bool     // configured forwarding_addresses
	local   func(domain string) bool
}

// NewForwarders builds the lookup from configured addresses and the source
// (text) form of Postfix alias and virtual maps.
func NewForwarders(listed, aliasFiles, virtualFiles []string, local func(domain string) bool) (*Forwarders, error) {
	f := &Forwarders{aliases: map[string][]string{}, virtual: map[string][]string{}, listed: map[string]bool{}, local: local}
	for _, a := range listed {
		f.listed[strings.ToLower(strings.TrimSpace(a))] = true
	}
	for _, p := range aliasFiles {
		if err := readTable(p, true, f.aliases); err != nil {
			return nil, err
		}
	}
	for _, p := range virtualFiles {
		if err := readTable(p, false, f.virtual); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func readTable(path string, alias bool, into map[string][]string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("autoreply: alias map: %w", err)
	}
	defer fh.Close()
	if err := parseTable(fh, alias, into); err != nil {
		return fmt.Errorf("autoreply: alias map %s: %w", path, err)
	}
	return nil
}

// parseTable reads aliases(5) ("name: a, b") or a Postfix lookup table
// source ("key a, b"): comments, blank lines, and continuation lines that
// start with white space.
func parseTable(r io.Reader, alias bool, into map[string][]string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var entries []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(entries) > 0 {
			entries[len(entries)-1] += " " + t
			continue
		}
		entries = append(entries, t)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, e := range entries {
		var key, val string
		if alias {
			k, v, ok := strings.Cut(e, ":")
			if !ok {
				continue
			}
			key, val = k, v
		} else {
			i := strings.IndexAny(e, " \t")
			if i < 0 {
				continue
			}
			key, val = e[:i], e[i:]
		}
		key = strings.ToLower(strings.Trim(strings.TrimSpace(key), `"`))
		for _, t := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			into[key] = append(into[key], strings.Trim(t, `"<>`))
		}
	}
	return nil
}

// OffSite reports whether mail to addr leaves our domains by Postfix's own
// expansion (or addr is listed), following local aliases up to a depth.
func (f *Forwarders) OffSite(addr string) bool {
	if f == nil {
		return false
	}
	return f.offSite(strings.ToLower(addr), 0)
}

func (f *Forwarders) offSite(addr string, depth int) bool {
	if depth > 10 {
		return false
	}
	if f.listed[addr] {
		return true
	}
	var targets []string
	if t, ok := f.virtual[addr]; ok {
		targets = t
	} else if t, ok := f.virtual["@"+message.Domain(addr)]; ok && strings.Contains(addr, "@") {
		targets = t
	} else if lp := message.LocalPart(addr); f.local(message.Domain(addr)) || !strings.Contains(addr, "@") {
		targets = f.aliases[lp]
	}
	for _, t := range targets {
		switch {
		case strings.HasPrefix(t, "|"), strings.HasPrefix(t, "/"), strings.HasPrefix(t, ":include:"):
			// A command or a file: delivered here as far as we know.
		case strings.Contains(t, "@"):
			if !f.local(message.Domain(t)) {
				return true
			}
			if t != addr && f.offSite(strings.ToLower(t), depth+1) {
				return true
			}
		default:
			if t != message.LocalPart(addr) && f.offSite(strings.ToLower(t), depth+1) {
				return true
			}
		}
	}
	return false
}
