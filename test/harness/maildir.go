package harness

import (
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Maildirs is local delivery for a private Postfix: its virtual(8)
// delivery agent writes the mail of each listed address to a Maildir of
// its own under Base (Base/<address>/new), as user nobody. Relaying stays
// as configured for every other domain.
type Maildirs struct {
	Base string
}

// VirtualMaildirs prepares Maildirs for addrs (all in one domain) and
// returns the main.cf parameters to pass in PostfixOptions.MainCF.
func VirtualMaildirs(t testing.TB, addrs ...string) (*Maildirs, map[string]string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		Unavailable(t, "no user nobody: %v", err)
	}
	m := &Maildirs{Base: shortTempDir(t, "md")}
	var domains []string
	var lines []string
	for _, a := range addrs {
		d := a[strings.LastIndexByte(a, '@')+1:]
		if !contains(domains, d) {
			domains = append(domains, d)
		}
		// A trailing slash makes virtual(8) deliver in Maildir format.
		lines = append(lines, a+" "+a+"/")
	}
	sort.Strings(lines)
	mapFile := filepath.Join(m.Base, "mailboxes")
	if err := os.WriteFile(mapFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(m.Base, uid, gid); err != nil {
		t.Fatal(err)
	}
	return m, map[string]string{
		"virtual_mailbox_domains": strings.Join(domains, ", "),
		"virtual_mailbox_base":    m.Base,
		"virtual_mailbox_maps":    "texthash:" + mapFile,
		"virtual_uid_maps":        "static:" + u.Uid,
		"virtual_gid_maps":        "static:" + u.Gid,
		"virtual_minimum_uid":     "1",
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// Messages returns the messages delivered to addr so far, oldest first.
func (m *Maildirs) Messages(addr string) [][]byte {
	dir := filepath.Join(m.Base, addr, "new")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var out [][]byte
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// Wait returns the first message delivered to addr for which pred is true
// (nil: any), or nil after timeout.
func (m *Maildirs) Wait(addr string, pred func([]byte) bool, timeout time.Duration) []byte {
	deadline := time.Now().Add(timeout)
	for {
		for _, b := range m.Messages(addr) {
			if pred == nil || pred(b) {
				return b
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}
