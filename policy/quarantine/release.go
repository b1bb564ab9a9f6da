package quarantine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Releaser re-injects a released message for one recipient.
type Releaser interface {
	Release(ctx context.Context, it *Item, rcpt string, msg io.Reader, by string) error
}

// ReleaseHeader is the header field added to a released message.
const ReleaseHeader = "X-Mailwarden-Released"

// Signer makes and checks the HMAC-SHA256 (RFC 2104) signatures of the
// release header, the digest's sign-in links and the page's sessions.
// Each use has its own key derived from the secret, so a signature made
// for one can never pass as another.
type Signer struct {
	secret []byte
}

// NewSigner returns a signer; the secret should have at least 32 random
// bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("quarantine: secret shorter than 16 bytes")
	}
	return &Signer{secret: bytes.Clone(secret)}, nil
}

// MAC returns HMAC-SHA256 of msg under the key of purpose.
func (s *Signer) MAC(purpose string, msg []byte) []byte {
	k := hmac.New(sha256.New, s.secret)
	k.Write([]byte("mailwarden quarantine " + purpose))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(msg)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// ReleaseValue returns the value of the release header: the item, the
// recipient, who released and when, and the signature over them.
func (s *Signer) ReleaseValue(id, rcpt, by string, t time.Time) string {
	by = strings.Map(func(r rune) rune {
		if r <= ' ' || r == ';' || r == '=' || r >= 0x7f {
			return '_'
		}
		return r
	}, by)
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := s.MAC("release", []byte(id+"\x00"+strings.ToLower(rcpt)+"\x00"+by+"\x00"+ts))
	return "id=" + id + "; by=" + by + "; t=" + ts + "; s=" + b64.EncodeToString(mac)
}

// ErrBadSignature: a release header, link or session that does not
// verify.
var ErrBadSignature = errors.New("quarantine: bad signature")

// VerifyRelease checks a release header value for the recipient it was
// delivered to.
func (s *Signer) VerifyRelease(value, rcpt string) error {
	f := map[string]string{}
	for _, p := range strings.Split(value, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		f[k] = v
	}
	got, err := b64.DecodeString(f["s"])
	if err != nil || f["id"] == "" || f["t"] == "" {
		return ErrBadSignature
	}
	want := s.MAC("release", []byte(f["id"]+"\x00"+strings.ToLower(rcpt)+"\x00"+f["by"]+"\x00"+f["t"]))
	if !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	return nil
}

// ErrLinkExpired: a sign-in link past its validity.
var ErrLinkExpired = errors.New("quarantine: link expired")

// Link returns a sign-in token for addr valid until exp.
func (s *Signer) Link(addr string, exp time.Time) string {
	a := b64.EncodeToString([]byte(strings.ToLower(addr)))
	e := strconv.FormatInt(exp.Unix(), 36)
	return a + "." + e + "." + b64.EncodeToString(s.MAC("link", []byte(a+"."+e)))
}

// VerifyLink returns the address of a sign-in token valid at now.
func (s *Signer) VerifyLink(tok string, now time.Time) (string, error) {
	return s.verifyToken("link", tok, now)
}

// Token and VerifyToken are Link and VerifyLink for another purpose (the
// page's session cookie).
func (s *Signer) Token(purpose, payload string, exp time.Time) string {
	a := b64.EncodeToString([]byte(payload))
	e := strconv.FormatInt(exp.Unix(), 36)
	return a + "." + e + "." + b64.EncodeToString(s.MAC(purpose, []byte(a+"."+e)))
}

// VerifyToken returns the payload of a token of purpose valid at now.
func (s *Signer) VerifyToken(purpose, tok string, now time.Time) (string, error) {
	return s.verifyToken(purpose, tok, now)
}

func (s *Signer) verifyToken(purpose, tok string, now time.Time) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", ErrBadSignature
	}
	mac, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, s.MAC(purpose, []byte(parts[0]+"."+parts[1]))) {
		return "", ErrBadSignature
	}
	exp, err := strconv.ParseInt(parts[1], 36, 64)
	if err != nil {
		return "", ErrBadSignature
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", ErrLinkExpired
	}
	p, err := b64.DecodeString(parts[0])
	if err != nil {
		return "", ErrBadSignature
	}
	return string(p), nil
}

// SMTPReleaser sends released mail to the MTA's re-injection listener
// (a loopback smtpd without milters; see examples/).
type SMTPReleaser struct {
	Addr   string // host:port, e.g. 127.0.0.1:10026
	HELO   string // our name; default "localhost"
	Signer *Signer
	Now    func() time.Time
	// Timeout bounds the whole transaction; default 60 s.
	Timeout time.Duration
}

// Release sends msg from the original envelope sender to rcpt only,
// with a signed release header in front.
func (r *SMTPReleaser) Release(ctx context.Context, it *Item, rcpt string, msg io.Reader, by string) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	hdr := ReleaseHeader + ": " + r.Signer.ReleaseValue(it.ID, rcpt, by, now()) + "\r\n"
	// RFC 5321 §4.1.1.2: the original reverse-path, "<>" for bounces.
	err := sendSMTP(ctx, r.Addr, r.HELO, r.Timeout, it.MailFrom, []string{rcpt}, io.MultiReader(strings.NewReader(hdr), msg))
	if err != nil {
		return fmt.Errorf("quarantine: release: %w", err)
	}
	return nil
}

// sendSMTP is one plain SMTP transaction to a local listener (no TLS, no
// AUTH: loopback only).
func sendSMTP(ctx context.Context, addr, helo string, timeout time.Duration, from string, to []string, msg io.Reader) error {
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if helo == "" {
		helo = "localhost"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("HELO: %w", err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, t := range to {
		if err := c.Rcpt(t); err != nil {
			return fmt.Errorf("RCPT %s: %w", t, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return c.Quit()
}

// HoldQueue acts on Postfix's hold queue (hold mode).
type HoldQueue struct {
	Postsuper string // default "postsuper"
	Postqueue string // default "postqueue"
	ConfigDir string // passed as -c when set
	// Run runs a command; nil runs it with os/exec. Tests inject a fake.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ErrQueueID: not a Postfix queue id.
var ErrQueueID = errors.New("quarantine: bad queue id")

// validQueueID accepts Postfix short (hex) and long queue ids and
// nothing else: postsuper takes "ALL" and "-" as well, which must never
// come from an index entry.
func validQueueID(id string) bool {
	if len(id) < 6 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func (h *HoldQueue) run(ctx context.Context, name, def string, args ...string) error {
	if name == "" {
		name = def
	}
	if h.ConfigDir != "" {
		args = append([]string{"-c", h.ConfigDir}, args...)
	}
	run := h.Run
	if run == nil {
		run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).CombinedOutput()
		}
	}
	out, err := run(ctx, name, args...)
	if err != nil {
		return fmt.Errorf("quarantine: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Release moves the message from the hold queue back to the active queue
// (postsuper -H) and asks for immediate delivery (postqueue -i).
func (h *HoldQueue) Release(ctx context.Context, queueID string) error {
	if !validQueueID(queueID) {
		return fmt.Errorf("%w: %q", ErrQueueID, queueID)
	}
	if err := h.run(ctx, h.Postsuper, "postsuper", "-H", queueID); err != nil {
		return err
	}
	return h.run(ctx, h.Postqueue, "postqueue", "-i", queueID)
}

// Delete removes the message from the queue (postsuper -d).
func (h *HoldQueue) Delete(ctx context.Context, queueID string) error {
	if !validQueueID(queueID) {
		return fmt.Errorf("%w: %q", ErrQueueID, queueID)
	}
	return h.run(ctx, h.Postsuper, "postsuper", "-d", queueID)
}
