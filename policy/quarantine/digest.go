package quarantine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Digest mails each user the items quarantined for them since their last
// digest, with signed links to the page. The daemon runs Run periodically
// (hourly); each user gets at most one digest per period of their
// Frequency.
type Digest struct {
	Q      *Quarantine
	Signer *Signer
	// BaseURL is the page as users reach it, e.g.
	// "https://mail.example.org/quarantine/".
	BaseURL string
	// From is the envelope sender and From of the digest.
	From string
	// LinkTTL is how long the links work; default 7 days.
	LinkTTL time.Duration
	// Addr is the local MTA's SMTP listener; default 127.0.0.1:25.
	Addr string
	// Send sends one message; nil sends over SMTP to Addr. Tests inject.
	Send func(ctx context.Context, from string, to []string, msg []byte) error
	// Local reports whether a recipient address gets digests (our own
	// users); nil means every recipient.
	Local func(addr string) bool
}

// DigestReport is what one run did.
type DigestReport struct {
	Sent  int // digests sent
	Items int // items listed in them
}

// slack lets a digest due at 06:00 go out at a run at 05:30, so that an
// hourly job does not drift a daily digest by an hour every day.
const slack = time.Hour

func (f Frequency) period() time.Duration {
	switch f {
	case FrequencyWeekly:
		return 7 * 24 * time.Hour
	case FrequencyOff:
		return 0
	}
	return 24 * time.Hour
}

// Run sends the digests that are due.
func (d *Digest) Run(ctx context.Context) (DigestReport, error) {
	var rep DigestReport
	if d.Q == nil || d.Signer == nil || d.From == "" {
		return rep, errors.New("quarantine: digest: needs the quarantine, a signer and a From address")
	}
	now := d.Q.Now()
	byUser := map[string][]*Item{}
	err := d.Q.cfg.Index.Scan(ctx, func(it *Item) bool {
		for _, r := range it.Recipients {
			if r.State != StateHeld || (d.Local != nil && !d.Local(r.Addr)) {
				continue
			}
			a := normAddr(r.Addr)
			byUser[a] = append(byUser[a], it)
		}
		return true
	})
	if err != nil {
		return rep, err
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	var errs []error
	for _, u := range users {
		p, err := d.Q.cfg.Index.Pref(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		per := p.Digest.period()
		if per == 0 || (!p.LastDigest.IsZero() && now.Before(p.LastDigest.Add(per-slack))) {
			continue
		}
		var fresh []*Item
		for _, it := range byUser[u] {
			if it.Time.After(p.LastDigest) {
				fresh = append(fresh, it)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		slices.SortFunc(fresh, func(x, y *Item) int { return y.Time.Compare(x.Time) })
		msg := d.compose(u, fresh, now)
		send := d.Send
		if send == nil {
			send = d.smtp
		}
		if err := send(ctx, d.From, []string{u}, msg); err != nil {
			errs = append(errs, fmt.Errorf("quarantine: digest to %s: %w", u, err))
			continue
		}
		p.LastDigest = now
		if err := d.Q.cfg.Index.SetPref(ctx, u, p); err != nil {
			errs = append(errs, err)
		}
		rep.Sent++
		d.Q.cfg.Observer.DigestSent()
		rep.Items += len(fresh)
	}
	return rep, errors.Join(errs...)
}

func (d *Digest) smtp(ctx context.Context, from string, to []string, msg []byte) error {
	addr := d.Addr
	if addr == "" {
		addr = "127.0.0.1:10026"
	}
	return sendSMTP(ctx, addr, "", 0, from, to, bytes.NewReader(msg))
}

// LinkURL returns the signed sign-in URL for addr, leading to next (a
// path of the page such as "item/<id>", or "").
func (d *Digest) LinkURL(addr, next string, now time.Time) string {
	ttl := d.LinkTTL
	if ttl == 0 {
		ttl = 7 * 24 * time.Hour
	}
	u := strings.TrimSuffix(d.BaseURL, "/") + "/login/" + d.Signer.Link(addr, now.Add(ttl))
	if next != "" {
		u += "?next=" + url.QueryEscape(next)
	}
	return u
}

func (d *Digest) compose(addr string, items []*Item, now time.Time) []byte {
	var b bytes.Buffer
	var rnd [12]byte
	rand.Read(rnd[:])
	dom := d.From[strings.LastIndexByte(d.From, '@')+1:]
	subj := fmt.Sprintf("Quarantine: %d new message(s) held for %s", len(items), addr)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n",
		d.From, addr, mime.QEncoding.Encode("utf-8", subj), now.Format(time.RFC1123Z), hex.EncodeToString(rnd[:]), dom)
	// RFC 3834 §5: a machine-generated message; auto-responders must not
	// answer it.
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	var t strings.Builder
	fmt.Fprintf(&t, "These messages to %s were held in quarantine since the last notice.\n", addr)
	fmt.Fprintf(&t, "Review them (link valid for 7 days):\n%s\n\n", d.LinkURL(addr, "", now))
	for _, it := range items {
		fmt.Fprintf(&t, "%s  [%s]  %s\n  From: %s\n  Subject: %s\n  %s\n\n",
			it.Time.Format("2006-01-02 15:04"), it.Category, it.ID, oneLine(it.From), oneLine(it.Subject),
			d.LinkURL(addr, "item/"+it.ID, now))
	}
	t.WriteString("To change how often you get this notice, use the settings on the page.\n")
	qp.Write([]byte(strings.ReplaceAll(t.String(), "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
