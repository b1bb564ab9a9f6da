package clamav

import (
	"errors"
	"fmt"
	"strings"
)

// ReplyStatus is the last word of a clamd scan reply.
type ReplyStatus uint8

const (
	ReplyOK    ReplyStatus = iota + 1 // "stream: OK"
	ReplyFound                        // "stream: Eicar-Signature FOUND"
	ReplyError                        // "INSTREAM size limit exceeded. ERROR"
)

func (s ReplyStatus) String() string {
	switch s {
	case ReplyOK:
		return "OK"
	case ReplyFound:
		return "FOUND"
	case ReplyError:
		return "ERROR"
	}
	return fmt.Sprintf("ReplyStatus(%d)", uint8(s))
}

// Reply is one parsed clamd scan reply line.
type Reply struct {
	Status ReplyStatus
	// Signature is the malware name with FOUND.
	Signature string
	// Message is clamd's error text with ERROR.
	Message string
}

// ErrBadReply is wrapped by ParseReply's errors.
var ErrBadReply = errors.New("clamav: malformed clamd reply")

// ParseReply reads one reply line of a scan command (clamd(8), "SCAN",
// "INSTREAM"):
//
//	stream: OK
//	stream: Win.Test.EICAR_HDB-1 FOUND
//	stream: Can't allocate memory ERROR
//	INSTREAM size limit exceeded. ERROR
//
// The line may carry the terminator of the "n" (newline) or "z" (NUL)
// command prefix and, in an IDSESSION, a leading "<id>: ".
func ParseReply(line string) (Reply, error) {
	s := strings.TrimRight(line, "\x00\r\n")
	if strings.ContainsAny(s, "\x00\r\n") {
		return Reply{}, fmt.Errorf("%w: %q: embedded line break", ErrBadReply, trunc(line))
	}
	s = strings.TrimSpace(s)
	last := strings.LastIndexByte(s, ' ')
	word, rest := s, ""
	if last >= 0 {
		word, rest = s[last+1:], strings.TrimSpace(s[:last])
	}
	switch word {
	case "ERROR":
		// The text may or may not name the file ("stream: ..."): keep
		// everything, minus a leading "stream:" that only repeats the
		// command.
		msg := rest
		if _, after, ok := cutName(rest); ok {
			msg = after
		}
		if msg == "" {
			msg = "unspecified error"
		}
		return Reply{Status: ReplyError, Message: msg}, nil
	case "OK":
		// "stream: OK": a name, its colon, nothing else.
		if len(rest) > 1 && strings.HasSuffix(rest, ":") {
			return Reply{Status: ReplyOK}, nil
		}
		return Reply{}, fmt.Errorf("%w: %q", ErrBadReply, trunc(line))
	case "FOUND":
		_, sig, ok := cutName(rest)
		if !ok || sig == "" || !validSignature(sig) {
			return Reply{}, fmt.Errorf("%w: %q: no signature name", ErrBadReply, trunc(line))
		}
		return Reply{Status: ReplyFound, Signature: sig}, nil
	}
	return Reply{}, fmt.Errorf("%w: %q", ErrBadReply, trunc(line))
}

// LimitSignature is the prefix of the names clamd reports, with
// AlertExceedsMax yes (clamd.conf), when one of its scan limits stopped a
// scan: Heuristics.Limits.Exceeded.MaxFileSize, .MaxScanSize, .MaxFiles,
// .MaxRecursion, .MaxScanTime... (clamd.conf(5)). Without AlertExceedsMax
// clamd says OK for what it did not read.
const LimitSignature = "Heuristics.Limits.Exceeded"

// LimitExceeded reports whether a FOUND signature only says that clamd
// stopped scanning at one of its limits: the message was not (fully)
// scanned, which is neither clean nor a finding.
func LimitExceeded(signature string) bool {
	return signature == LimitSignature || strings.HasPrefix(signature, LimitSignature+".")
}

// cutName splits "stream: rest" (or "1: stream: rest" in a session) at the
// name's colon. File names in SCAN replies may contain ": ", so the split
// is at the last ": " before the rest, which never contains one in
// clamd's FOUND and OK replies.
func cutName(s string) (name, rest string, ok bool) {
	i := strings.LastIndex(s, ": ")
	if i < 0 {
		if strings.HasSuffix(s, ":") {
			return s[:len(s)-1], "", true
		}
		return "", s, false
	}
	return s[:i], strings.TrimSpace(s[i+2:]), true
}

// validSignature accepts the printable names clamd reports; a name with
// spaces comes from ExtendedDetectionInfo ("Sig(md5:size)") or a YARA rule.
func validSignature(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
