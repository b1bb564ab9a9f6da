package sssp

import (
	"fmt"
	"strings"
)

// Kind is the first word of an SSSP server line.
type Kind uint8

const (
	KindOK    Kind = iota + 1 // "OK SSSP/1.0" greeting, or "OK <code> <path>"
	KindACC                   // "ACC <id>": request accepted
	KindREJ                   // "REJ <code>": request refused
	KindVirus                 // "VIRUS <name> <path>"
	KindFail                  // "FAIL <code> <path>"
	KindDone                  // "DONE OK|FAIL <code> <text>"
	KindInfo                  // EVENT, TYPE, FILE, SANDBOX lines and the empty line
	KindBye                   // "BYE"
)

func (k Kind) String() string {
	switch k {
	case KindOK:
		return "OK"
	case KindACC:
		return "ACC"
	case KindREJ:
		return "REJ"
	case KindVirus:
		return "VIRUS"
	case KindFail:
		return "FAIL"
	case KindDone:
		return "DONE"
	case KindInfo:
		return "INFO"
	case KindBye:
		return "BYE"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Line is one parsed server line.
type Line struct {
	Kind Kind
	// Code is the SAVI result code of OK/FAIL/DONE lines ("0000",
	// "0203") or the REJ code ("4").
	Code string
	// DoneOK is DONE's OK (true) or FAIL.
	DoneOK bool
	// Arg is the rest: the virus name (VIRUS), the greeting's protocol
	// (OK SSSP/1.0), DONE's text, the path (OK, FAIL), the id (ACC).
	Arg string
}

// ParseLine reads one line of the server (without its line end).
func ParseLine(s string) (Line, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return Line{}, fmt.Errorf("%w: %q: control characters", ErrBadReply, trunc(s))
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return Line{Kind: KindInfo}, nil
	}
	bad := func() (Line, error) { return Line{}, fmt.Errorf("%w: %q", ErrBadReply, trunc(s)) }
	rest := func(n int) string {
		if len(f) <= n {
			return ""
		}
		return strings.Join(f[n:], " ")
	}
	switch f[0] {
	case "OK":
		if len(f) == 2 && strings.HasPrefix(f[1], "SSSP/") {
			return Line{Kind: KindOK, Arg: f[1]}, nil
		}
		if len(f) < 2 || !isCode(f[1]) {
			return bad()
		}
		return Line{Kind: KindOK, Code: f[1], Arg: rest(2)}, nil
	case "ACC":
		return Line{Kind: KindACC, Arg: rest(1)}, nil
	case "REJ":
		if len(f) < 2 {
			return bad()
		}
		return Line{Kind: KindREJ, Code: f[1], Arg: rest(2)}, nil
	case "VIRUS":
		if len(f) < 2 || !printable(f[1]) {
			return bad()
		}
		return Line{Kind: KindVirus, Arg: f[1]}, nil
	case "FAIL":
		if len(f) < 2 || !isCode(f[1]) {
			return bad()
		}
		return Line{Kind: KindFail, Code: f[1], Arg: rest(2)}, nil
	case "DONE":
		if len(f) < 3 || (f[1] != "OK" && f[1] != "FAIL") || !isCode(f[2]) {
			return bad()
		}
		return Line{Kind: KindDone, DoneOK: f[1] == "OK", Code: f[2], Arg: rest(3)}, nil
	case "EVENT", "TYPE", "FILE", "SANDBOX":
		return Line{Kind: KindInfo, Arg: rest(1)}, nil
	case "BYE":
		return Line{Kind: KindBye}, nil
	}
	return bad()
}

// isCode: SAVI result codes are four hex digits.
func isCode(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x21 || c >= 0x7f {
			return false
		}
	}
	return s != ""
}
