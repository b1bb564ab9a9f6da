// Package filter is the milter side of mailwarden: it speaks the milter
// protocol (Sendmail's libmilter protocol, version 6, as implemented by
// Postfix and Sendmail) through github.com/d--j/go-milter, turns each mail
// transaction into a message.Message, and turns the policy.Verdict back into
// a milter response plus header and envelope changes.
//
// It is the only package that imports go-milter. One message flows:
// Connect/Helo (client) → MailFrom (acquire the pipeline in force) → RcptTo
// (per-recipient decisions) → Header → BodyChunk (spooled to memory or a
// temp file, never truncated) → EndOfMessage (policy.Pipeline.Run, apply,
// one summary log line, spool removed).
package filter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Options configures a Server.
type Options struct {
	// Holder gives each transaction the pipeline in force.
	Holder *policy.Holder
	// Logger receives the one summary line per message.
	Logger *slog.Logger
	// ReadTimeout closes an MTA connection idle for this long (0: 5
	// minutes). It also bounds how long one packet may take to arrive. The
	// first packet (option negotiation) must arrive within 1 s (go-milter).
	ReadTimeout time.Duration
	// MaxConns caps concurrent MTA connections; more are accepted and
	// closed at once (0: no cap).
	MaxConns int
	// OnDrop, when set, counts every connection the filter closes itself.
	OnDrop func(Drop)
	// Quarantine, when set, returns the quarantine in force (nil: none):
	// a quarantine verdict is then kept by us before the MTA gets its
	// answer (see Quarantiner).
	Quarantine func() Quarantiner
}

// Quarantiner keeps the messages a verdict quarantines (mailwarden's own
// quarantine, policy/quarantine).
type Quarantiner interface {
	// Keep is called for an accept, quarantine or reject verdict before
	// the MTA is answered. It may change v first, by the recipients' own
	// sender lists (an allowed sender's spam is delivered, a denied
	// sender's mail quarantined), and then keeps the message when v is a
	// quarantine verdict. An error means the message must be tempfailed:
	// never lost, never let through unseen.
	Keep(ctx context.Context, cfg *policy.Config, m *message.Message, v *policy.Verdict) (Kept, error)
	// StoreMax is the largest message Keep can store (0: none past
	// max_message_size). With max_message_size_action = "quarantine" the
	// filter keeps oversize messages up to it, unchecked; bigger ones
	// arrive Incomplete and Keep leaves them to the MTA's hold queue.
	StoreMax() int64
}

// Kept is what the MTA is told once Keep has kept a message.
type Kept struct {
	// Hold: the MTA keeps the message in its hold queue as before (hold
	// mode, or store failure with on_error = "accept").
	Hold bool
	// DeleteRcpts are the quarantined recipients (store mode); the others
	// get the message.
	DeleteRcpts []string
	// Discard: every recipient was quarantined.
	Discard bool
	// ID is the quarantine item, for the summary line.
	ID string
}

// DefaultReadTimeout is the idle bound of an MTA connection when
// Options.ReadTimeout is 0.
const DefaultReadTimeout = 5 * time.Minute

// Server is a milter server.
type Server struct {
	opts     Options
	ms       *milter.Server
	inflight atomic.Int64

	lastLog    atomic.Int64 // unix ns of the last rate-limited log line
	suppressed atomic.Int64 // events since then
	accErr     atomic.Int64 // temporary accept errors
	ln         atomic.Pointer[guardListener]
	mem        budget // body bytes in memory, all transactions
}

// The protocol steps we ask for. We need no DATA and no end-of-header
// event and answer only where a reply can matter (RCPT, body for
// oversize skips, end of message). SMFIP_SKIP stops the body of an
// oversize message, which we would only throw away (see BodyChunk).
const protocol = milter.OptNoUnknown | milter.OptNoData | milter.OptNoEOH |
	milter.OptNoConnReply | milter.OptNoHeloReply | milter.OptNoMailReply | milter.OptNoHeaderReply |
	milter.OptHeaderLeadingSpace | milter.OptSkip

// macros we request per stage; the MTA sends those it has.
var macroStages = map[milter.MacroStage][]milter.MacroName{
	milter.StageConnect: {milter.MacroMTAFQDN, milter.MacroDaemonName, milter.MacroDaemonAddr, milter.MacroClientAddr, milter.MacroClientName, milter.MacroClientPTR, milter.MacroMTAVersion, milter.MacroIfAddr},
	milter.StageHelo:    {milter.MacroTlsVersion, milter.MacroCipher, milter.MacroCertSubject},
	milter.StageMail:    {milter.MacroQueueId, milter.MacroAuthType, milter.MacroAuthAuthen, milter.MacroAuthAuthor, milter.MacroMailAddr, milter.MacroMailMailer},
	milter.StageRcpt:    {milter.MacroRcptAddr, milter.MacroRcptMailer, milter.MacroRcptHost},
	milter.StageData:    {milter.MacroQueueId},
	milter.StageEOM:     {milter.MacroQueueId},
}

// New makes a Server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	s := &Server{opts: opts}
	mopts := []milter.Option{
		milter.WithDynamicMilter(func(version uint32, action milter.OptAction, proto milter.OptProtocol, maxData milter.DataSize) milter.Milter {
			return &session{srv: s, proto: proto}
		}),
		milter.WithActions(milter.OptAddHeader | milter.OptChangeHeader | milter.OptAddRcpt | milter.OptRemoveRcpt | milter.OptChangeFrom | milter.OptQuarantine | milter.OptSetMacros),
		milter.WithProtocols(protocol),
		milter.WithNegotiationCallback(negotiate),
		milter.WithReadTimeout(opts.ReadTimeout),
		milter.WithWriteTimeout(30 * time.Second),
	}
	for st, names := range macroStages {
		mopts = append(mopts, milter.WithMacroRequest(st, names))
	}
	s.ms = milter.NewServer(mopts...)
	return s
}

// requiredActions are the modifications a verdict needs on every message:
// our header fields and the hold queue.
const requiredActions = milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine

// negotiate takes what the MTA offers of the protocol options we ask for.
// They only save round trips (the no-step and no-reply flags) or change how
// header values arrive (SMFIP_HDR_LEADSPC, handled in Header), so a missing
// one is no reason to refuse the MTA, which go-milter's default negotiation
// does. Of the actions, those in requiredActions are needed; the others are
// used when offered (a verdict that needs a missing one fails at the end of
// that message, and the MTA applies its default action).
func negotiate(mtaVersion, milterVersion uint32, mtaActions, milterActions milter.OptAction, mtaProtocol, milterProtocol milter.OptProtocol, offered milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
	version := min(mtaVersion, milterVersion)
	if version < 2 {
		return 0, 0, 0, 0, fmt.Errorf("filter: MTA speaks milter protocol version %d, want 2 or later", mtaVersion)
	}
	if mtaActions&requiredActions != requiredActions {
		return 0, 0, 0, 0, fmt.Errorf("filter: the MTA does not allow the changes we need (offered %v, need %v)", mtaActions, requiredActions)
	}
	return version, milterActions & mtaActions, milterProtocol & mtaProtocol, offered, nil
}

// Serve accepts MTA connections on ln until Shutdown.
// Every connection's byte stream is checked at the milter framing level
// before the protocol library parses it (see guardConn), and temporary
// accept errors back off instead of ending Serve.
func (s *Server) Serve(ln net.Listener) error {
	g := &guardListener{Listener: ln, srv: s, sleep: time.Sleep}
	s.ln.Store(g)
	err := s.ms.Serve(g)
	if errors.Is(err, milter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, waits until no message is in flight (or ctx
// ends), then closes every MTA connection. Idle connections (an MTA keeps
// one open between messages) do not hold the shutdown up: the MTA
// reconnects to the next instance for its next message.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.ms.Shutdown(ctx) }()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return fmt.Errorf("filter: grace period over, %d message(s) cut off: %w", s.InFlight(), err)
			}
			return err
		case <-t.C:
			if s.InFlight() == 0 {
				s.ms.Close() // closes idle sessions; Shutdown then returns
				return <-done
			}
		}
	}
}

// InFlight is the number of messages being processed (between MAIL FROM
// and the end of the message).
func (s *Server) InFlight() int { return int(s.inflight.Load()) }

// Conns is the number of open MTA connections.
func (s *Server) Conns() int {
	if g := s.ln.Load(); g != nil {
		return int(g.active.Load())
	}
	return 0
}

// BodyMemory is the body bytes held in memory by messages in flight.
func (s *Server) BodyMemory() int64 { return s.mem.Used() }

// AcceptErrors counts temporary accept errors (each one backed off).
func (s *Server) AcceptErrors() int64 { return s.accErr.Load() }

// Listen opens the milter socket: "unix:/path" or "inet:host:port"
// ("inet6:[::1]:port"). A stale unix socket file (nobody answers on it) is
// removed first; a live one is an error. mode and group apply to unix
// sockets so that the MTA's user can connect.
func Listen(address string, mode fs.FileMode, group string) (net.Listener, error) {
	network, addr, ok := strings.Cut(address, ":")
	if !ok {
		return nil, fmt.Errorf("filter: listen address %q: want unix:/path or inet:host:port", address)
	}
	switch network {
	case "inet", "tcp":
		return net.Listen("tcp", addr)
	case "inet6", "tcp6":
		return net.Listen("tcp6", addr)
	case "unix", "local":
	default:
		return nil, fmt.Errorf("filter: listen address %q: unknown network %q", address, network)
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("filter: %s exists and is not a socket; not removing it", addr)
		}
		if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("filter: %s: another process is listening on it", addr)
		}
		if err := os.Remove(addr); err != nil {
			return nil, fmt.Errorf("filter: removing stale socket: %w", err)
		}
	}
	// Create the socket with no permissions for others, then widen to the
	// configured mode: never a window in which it is world-writable.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", addr)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, err
		}
		if err := os.Chown(addr, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("filter: socket group: %w", err)
		}
	}
	if err := os.Chmod(addr, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("filter: socket mode: %w", err)
	}
	return ln, nil
}

func lookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil {
		return id, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("filter: socket group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}
