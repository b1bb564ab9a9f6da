package virus

import (
	"context"
	"errors"
	"io"

	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/policy/virus/sssp"
)

// ICAP adapts an icap.Client (an engine behind an ICAP server, RFC 3507)
// to Scanner.
type ICAP struct {
	name   string
	client *icap.Client
}

// NewICAP names an ICAP client as a scanner ("icap:<name>").
func NewICAP(name string, c *icap.Client) *ICAP { return &ICAP{name: name, client: c} }

func (s *ICAP) Name() string { return s.name }

// Scan maps the client's outcome: a threat is infected; a message above
// max_size, or one the server passed on without scanning it (c-icap above
// its MaxObjectSize), is oversize; anything else that is not a verdict is
// an error. Nothing but a 204 or an unchanged echo is clean.
func (s *ICAP) Scan(ctx context.Context, open func() io.Reader, size int64) Finding {
	res, err := s.client.Scan(ctx, open, size)
	switch {
	case errors.Is(err, icap.ErrOversize), errors.Is(err, icap.ErrUnscanned):
		return Finding{Status: StatusOversize, Err: err}
	case err != nil:
		return Finding{Status: StatusError, Err: err}
	case res.Infected:
		return Finding{Status: StatusInfected, Signature: res.Threat, Server: res.Server}
	}
	return Finding{Status: StatusClean, Server: res.Server}
}

// Ping asks every server for OPTIONS (as at start and on reload).
func (s *ICAP) Ping(ctx context.Context) error { return s.client.Ping(ctx) }

// Close closes the idle connections.
func (s *ICAP) Close() error { return s.client.Close() }

// SSSP adapts an sssp.Client (Sophos savdid) to Scanner.
type SSSP struct {
	name   string
	client *sssp.Client
}

// NewSSSP names an SSSP client as a scanner ("sssp:<name>").
func NewSSSP(name string, c *sssp.Client) *SSSP { return &SSSP{name: name, client: c} }

func (s *SSSP) Name() string { return s.name }

// Scan maps the client's outcome: VIRUS is infected, REJ 4 or a message
// above max_size is oversize, anything else but DONE OK 0000 is an error.
func (s *SSSP) Scan(ctx context.Context, open func() io.Reader, size int64) Finding {
	res, err := s.client.Scan(ctx, open, size)
	switch {
	case errors.Is(err, sssp.ErrOversize):
		return Finding{Status: StatusOversize, Err: err}
	case err != nil:
		return Finding{Status: StatusError, Err: err}
	case res.Infected:
		return Finding{Status: StatusInfected, Signature: res.Threat, Server: res.Server}
	}
	return Finding{Status: StatusClean, Server: res.Server}
}

// Ping opens a session with every server.
func (s *SSSP) Ping(ctx context.Context) error { return s.client.Ping(ctx) }
