package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mail is one message received by a Sink.
type Mail struct {
	Helo string
	From string   // envelope sender, "" for the null sender
	To   []string // envelope recipients
	Data []byte   // the message as received, CRLF line ends, dots unstuffed
}

// HeaderField is one header field of a Mail, in order.
type HeaderField struct {
	Name  string
	Value string // unfolded, leading space trimmed
	Raw   string // the field as received, folding and CRLF included
}

// Header returns the header fields in order.
func (m *Mail) Header() []HeaderField {
	var fields []HeaderField
	r := bufio.NewReader(bytes.NewReader(m.Data))
	for {
		line, err := r.ReadString('\n')
		if line == "\r\n" || line == "\n" || (line == "" && err != nil) {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			f := &fields[len(fields)-1]
			f.Raw += line
			f.Value += " " + strings.TrimSpace(line)
		} else if i := strings.IndexByte(line, ':'); i > 0 {
			fields = append(fields, HeaderField{Name: line[:i], Value: strings.TrimSpace(line[i+1:]), Raw: line})
		}
		if err != nil {
			break
		}
	}
	return fields
}

// Get returns the values of every field with this name (any case), in order.
func (m *Mail) Get(name string) []string {
	var v []string
	for _, f := range m.Header() {
		if strings.EqualFold(f.Name, name) {
			v = append(v, f.Value)
		}
	}
	return v
}

// Body returns the body (after the empty line).
func (m *Mail) Body() []byte {
	if i := bytes.Index(m.Data, []byte("\r\n\r\n")); i >= 0 {
		return m.Data[i+4:]
	}
	return nil
}

// Sink is an SMTP server on 127.0.0.1 that accepts every message, the next
// hop of a test's Postfix.
type Sink struct {
	Addr string // host:port

	ln    net.Listener
	mu    sync.Mutex
	mails []*Mail
	next  int           // first mail not yet returned by Wait
	added chan struct{} // closed and replaced on every new mail
	wg    sync.WaitGroup
	conns map[net.Conn]bool
}

// StartSink starts a sink until the test ends.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: sink: %v", err)
	}
	s := &Sink{Addr: ln.Addr().String(), ln: ln, added: make(chan struct{}), conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

// Port is the sink's TCP port.
func (s *Sink) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *Sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Sink) session(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		// Flush only when no pipelined command is waiting (RFC 2920 §3.2
		// allows batching replies; flushing always is simpler and correct).
		return w.Flush() == nil
	}
	if !reply("220 sink.test.example ESMTP harness sink") {
		return
	}
	var cur *Mail
	helo := ""
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			helo = arg
			cur = nil
			if !reply("250-sink.test.example", "250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8", "250-SIZE 104857600", "250 ENHANCEDSTATUSCODES") {
				return
			}
		case "HELO":
			helo = arg
			cur = nil
			reply("250 sink.test.example")
		case "MAIL":
			addr, ok := pathArg(arg, "FROM:")
			if !ok {
				reply("501 5.5.4 Syntax: MAIL FROM:<address>")
				continue
			}
			cur = &Mail{Helo: helo, From: addr}
			reply("250 2.1.0 Ok")
		case "RCPT":
			addr, ok := pathArg(arg, "TO:")
			switch {
			case cur == nil:
				reply("503 5.5.1 Need MAIL first")
			case !ok:
				reply("501 5.5.4 Syntax: RCPT TO:<address>")
			default:
				cur.To = append(cur.To, addr)
				reply("250 2.1.5 Ok")
			}
		case "DATA":
			if cur == nil || len(cur.To) == 0 {
				reply("503 5.5.1 Need RCPT first")
				continue
			}
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, err := readData(r)
			if err != nil {
				return
			}
			cur.Data = data
			s.mu.Lock()
			s.mails = append(s.mails, cur)
			close(s.added)
			s.added = make(chan struct{})
			s.mu.Unlock()
			cur = nil
			reply("250 2.0.0 Ok: queued")
		case "RSET":
			cur = nil
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("502 5.5.2 Command not recognized")
		}
	}
}

// pathArg reads "FROM:<addr> PARAMS" (prefix any case).
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	a := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(a, "<") {
		return "", false
	}
	end := strings.IndexByte(a, '>')
	if end < 0 {
		return "", false
	}
	return a[1:end], true
}

// readData reads a DATA section up to the lone dot, unstuffing dots
// (RFC 5321 §4.5.2).
func readData(r *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == ".\r\n" || line == ".\n" {
			return buf.Bytes(), nil
		}
		if strings.HasPrefix(line, ".") {
			line = line[1:]
		}
		buf.WriteString(line)
	}
}

// Mails returns every message received so far.
func (s *Sink) Mails() []*Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Mail(nil), s.mails...)
}

// Wait returns the next message not yet returned by Wait, waiting up to
// timeout for it; it fails the test if none comes.
func (s *Sink) Wait(t testing.TB, timeout time.Duration) *Mail {
	t.Helper()
	m := s.WaitFor(timeout, func(*Mail) bool { return true })
	if m == nil {
		t.Fatalf("harness: sink received no message within %v", timeout)
	}
	return m
}

// WaitFor returns the first message not yet returned by Wait or WaitFor
// that pred accepts (messages it skips stay available), or nil after
// timeout. Use it when several tests share one sink, e.g. with a unique
// recipient per test.
func (s *Sink) WaitFor(timeout time.Duration, pred func(*Mail) bool) *Mail {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := s.next; i < len(s.mails); i++ {
			if m := s.mails[i]; pred(m) {
				// Move it before s.next so that it is returned once.
				copy(s.mails[s.next+1:i+1], s.mails[s.next:i])
				s.mails[s.next] = m
				s.next++
				s.mu.Unlock()
				return m
			}
		}
		ch := s.added
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return nil
		}
	}
}

// To matches a mail with rcpt among its envelope recipients.
func To(rcpt string) func(*Mail) bool {
	return func(m *Mail) bool {
		for _, r := range m.To {
			if strings.EqualFold(r, rcpt) {
				return true
			}
		}
		return false
	}
}

// SMTPError is a 4xx or 5xx reply to a client command.
type SMTPError struct {
	Stage    string // connect, EHLO, XCLIENT, MAIL, RCPT, DATA, "." (end of data)
	Code     int    // 421, 450, 550, ...
	Enhanced string // RFC 3463 status code, e.g. "5.7.1"; "" if none
	Text     string // the rest of the reply, lines joined by "\n"
}

func (e *SMTPError) Error() string {
	s := fmt.Sprintf("smtp: %s: %d", e.Stage, e.Code)
	if e.Enhanced != "" {
		s += " " + e.Enhanced
	}
	return s + " " + e.Text
}

// Temporary reports a 4xx reply.
func (e *SMTPError) Temporary() bool { return e.Code/100 == 4 }

// Submission is one SMTP transaction for Send.
type Submission struct {
	Helo  string   // "" is localhost
	From  string   // "" is the null sender
	Rcpts []string // at least one
	Data  []byte   // the message; bare LF line ends become CRLF
	// XClient, if set, is sent as "XCLIENT <XClient>" after EHLO (e.g.
	// "ADDR=192.0.2.1 NAME=mail.example.org"), so that Postfix (with
	// smtpd_authorized_xclient_hosts, which StartPostfix sets for
	// loopback) presents another client to the milter. Postfix answers
	// XCLIENT with a new greeting, so EHLO is sent again.
	XClient string
	// Source, if set, is the local IP address to connect from (e.g.
	// "127.0.0.2": all of 127/8 is this host on Linux), for MTAs without
	// XCLIENT (Sendmail) to present a client outside trusted_networks.
	Source  string
	Timeout time.Duration // for the whole transaction; 0 is 60 s
}

// SendSMTP submits one message over SMTP to addr (host:port). A 4xx or 5xx
// reply at any stage returns an *SMTPError; a refused recipient ends the
// transaction (even if others were accepted).
func SendSMTP(addr, helo, from string, rcpts []string, data []byte) error {
	return Submission{Helo: helo, From: from, Rcpts: rcpts, Data: data}.Send(addr)
}

// Send runs the transaction against addr (host:port).
func (s Submission) Send(addr string) error {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	if s.Source != "" {
		ip := net.ParseIP(s.Source)
		if ip == nil {
			return fmt.Errorf("smtp: bad source address %q", s.Source)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	c := &client{r: bufio.NewReader(conn), w: conn}
	if err := c.expect("connect", "", 2); err != nil {
		return err
	}
	helo := s.Helo
	if helo == "" {
		helo = "localhost"
	}
	if err := c.expect("EHLO", "EHLO "+helo, 2); err != nil {
		return err
	}
	if s.XClient != "" {
		if err := c.expect("XCLIENT", "XCLIENT "+s.XClient, 2); err != nil {
			return err
		}
		// Postfix answers XCLIENT with a new greeting; say EHLO again.
		if err := c.expect("EHLO", "EHLO "+helo, 2); err != nil {
			return err
		}
	}
	if err := c.expect("MAIL", "MAIL FROM:<"+s.From+">", 2); err != nil {
		c.quit()
		return err
	}
	if len(s.Rcpts) == 0 {
		c.quit()
		return fmt.Errorf("smtp: no recipients")
	}
	for _, r := range s.Rcpts {
		if err := c.expect("RCPT", "RCPT TO:<"+r+">", 2); err != nil {
			c.quit()
			return err
		}
	}
	if err := c.expect("DATA", "DATA", 3); err != nil {
		c.quit()
		return err
	}
	if _, err := conn.Write(dotStuff(s.Data)); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if err := c.expect(".", ".", 2); err != nil {
		c.quit()
		return err
	}
	c.quit()
	return nil
}

// dotStuff converts to CRLF line ends and escapes leading dots
// (RFC 5321 §4.5.2); it does not add the final ".".
func dotStuff(data []byte) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

type client struct {
	r *bufio.Reader
	w io.Writer
}

// expect sends cmd (unless "") and reads a reply, which must be of class
// want (2 or 3); 4xx and 5xx become *SMTPError.
func (c *client) expect(stage, cmd string, want int) error {
	if cmd != "" {
		if _, err := io.WriteString(c.w, cmd+"\r\n"); err != nil {
			return fmt.Errorf("smtp: %s: %w", stage, err)
		}
	}
	code, text, err := c.reply()
	if err != nil {
		return fmt.Errorf("smtp: %s: %w", stage, err)
	}
	if code/100 == want {
		return nil
	}
	e := &SMTPError{Stage: stage, Code: code, Text: text}
	if f := strings.Fields(text); len(f) > 0 && isEnhanced(f[0], code) {
		e.Enhanced = f[0]
		e.Text = strings.TrimSpace(strings.TrimPrefix(text, f[0]))
		// Each continuation line repeats the enhanced code.
		e.Text = strings.ReplaceAll(e.Text, "\n"+f[0]+" ", "\n")
	}
	if code/100 != 4 && code/100 != 5 {
		return fmt.Errorf("smtp: %s: unexpected reply %d %s", stage, code, text)
	}
	return e
}

func (c *client) reply() (int, string, error) {
	var lines []string
	code := 0
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, "", fmt.Errorf("short reply %q", line)
		}
		n, err := strconv.Atoi(line[:3])
		if err != nil || (code != 0 && n != code) {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		code = n
		text := ""
		if len(line) > 4 {
			text = strings.TrimSpace(line[4:])
		}
		lines = append(lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return code, strings.Join(lines, "\n"), nil
		}
	}
}

func (c *client) quit() {
	io.WriteString(c.w, "QUIT\r\n")
	c.reply()
}

// isEnhanced reports whether s is an RFC 3463 status code matching the
// reply's class ("5.7.1" for a 550).
func isEnhanced(s string, code int) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || p[0] != strconv.Itoa(code/100) {
		return false
	}
	for _, x := range p[1:] {
		if _, err := strconv.Atoi(x); err != nil || len(x) == 0 || len(x) > 3 {
			return false
		}
	}
	return true
}
