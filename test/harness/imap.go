package harness

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IMAP is a minimal IMAP4rev1 client (RFC 3501) speaking raw commands
// over the socket: enough to log in, append, select, search and move
// (RFC 6851) as a mail client does. It is not a general client: untagged
// responses come back as text, literals inlined.
type IMAP struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
}

// DialIMAP connects to addr and reads the greeting.
func DialIMAP(addr string) (*IMAP, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	m := &IMAP{c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := m.line()
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.HasPrefix(line, "* OK") {
		c.Close()
		return nil, fmt.Errorf("imap: greeting %q", line)
	}
	return m, nil
}

// Close logs out and closes the connection.
func (m *IMAP) Close() {
	m.Cmd("LOGOUT")
	m.c.Close()
}

// literalAt matches a line that announces a literal: "... {123}".
var literalAt = regexp.MustCompile(`\{(\d+)\}$`)

// line reads one response line, inlining literals, without the CRLF.
func (m *IMAP) line() (string, error) {
	var b strings.Builder
	for {
		s, err := m.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		s = strings.TrimRight(s, "\r\n")
		b.WriteString(s)
		sm := literalAt.FindStringSubmatch(s)
		if sm == nil {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(sm[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(m.r, lit); err != nil {
			return "", err
		}
		b.Write(lit)
	}
}

// Quote is an IMAP quoted string.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Cmd sends one command and returns its untagged responses; a NO or BAD
// completion is an error.
func (m *IMAP) Cmd(format string, args ...any) ([]string, error) {
	m.tag++
	tag := fmt.Sprintf("a%d", m.tag)
	cmd := fmt.Sprintf(format, args...)
	m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(m.c, "%s %s\r\n", tag, cmd); err != nil {
		return nil, err
	}
	return m.finish(tag, cmd)
}

func (m *IMAP) finish(tag, cmd string) ([]string, error) {
	var untagged []string
	for {
		line, err := m.line()
		if err != nil {
			return untagged, fmt.Errorf("imap: %s: %w", cmd, err)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return untagged, fmt.Errorf("imap: %s: %s", cmd, rest)
			}
			return untagged, nil
		}
		untagged = append(untagged, line)
	}
}

// Login authenticates with LOGIN.
func (m *IMAP) Login(user, pass string) error {
	_, err := m.Cmd("LOGIN %s %s", Quote(user), Quote(pass))
	return err
}

// Append stores msg in mailbox (a synchronizing literal).
func (m *IMAP) Append(mailbox string, msg []byte) error {
	m.tag++
	tag := fmt.Sprintf("a%d", m.tag)
	m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(m.c, "%s APPEND %s {%d}\r\n", tag, Quote(mailbox), len(msg)); err != nil {
		return err
	}
	line, err := m.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+") {
		return fmt.Errorf("imap: APPEND: %s", line)
	}
	if _, err := m.c.Write(append(append([]byte{}, msg...), '\r', '\n')); err != nil {
		return err
	}
	_, err = m.finish(tag, "APPEND")
	return err
}

// Select opens mailbox.
func (m *IMAP) Select(mailbox string) error {
	_, err := m.Cmd("SELECT %s", Quote(mailbox))
	return err
}

// UIDs lists the UIDs of the selected mailbox (UID SEARCH ALL).
func (m *IMAP) UIDs() ([]string, error) {
	lines, err := m.Cmd("UID SEARCH ALL")
	if err != nil {
		return nil, err
	}
	var uids []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "* SEARCH"); ok {
			uids = append(uids, strings.Fields(rest)...)
		}
	}
	return uids, nil
}

// Move moves the messages with these UIDs from the selected mailbox to
// mailbox with UID MOVE (RFC 6851), as clients do for "move to Junk".
func (m *IMAP) Move(uids []string, mailbox string) error {
	_, err := m.Cmd("UID MOVE %s %s", strings.Join(uids, ","), Quote(mailbox))
	return err
}
