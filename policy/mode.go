package policy

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Mode is the filter's operating mode; the guidance asks that the filter can
// be switched to a safe mode at short notice.
type Mode string

const (
	ModeEnforce     Mode = "enforce"      // apply verdicts
	ModeMonitor     Mode = "monitor"      // run everything, add headers, log the would-be action, accept
	ModeTempfailAll Mode = "tempfail-all" // answer every message with 4xx, run no check
	ModeAcceptAll   Mode = "accept-all"   // accept every message untouched, run no check
)

// ParseMode validates a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeEnforce, ModeMonitor, ModeTempfailAll, ModeAcceptAll:
		return m, nil
	}
	return "", fmt.Errorf("policy: unknown mode %q (want enforce, monitor, tempfail-all or accept-all)", s)
}

func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ModeSwitch lets an operator override the configured mode at run time
// (control socket); it outlives pipeline reloads.
type ModeSwitch struct{ v atomic.Pointer[Mode] }

// Set overrides the mode; Clear returns to the configured one.
func (s *ModeSwitch) Set(m Mode) { s.v.Store(&m) }
func (s *ModeSwitch) Clear()     { s.v.Store(nil) }

// Get returns the override, if any.
func (s *ModeSwitch) Get() (Mode, bool) {
	if s == nil {
		return "", false
	}
	if p := s.v.Load(); p != nil {
		return *p, true
	}
	return "", false
}
