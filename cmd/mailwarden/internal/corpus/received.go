package corpus

import (
	"bytes"
	"net/mail"
	"strings"
	"time"
)

// Received returns when a message arrived: the date of its topmost
// Received field (RFC 5321 §4.4: the receiving server's time stamp, after
// the last ";"), which the sender does not control, else its Date field;
// ok is false when neither parses. The held-out split of the shared corpus
// (by time) uses it.
func Received(raw []byte) (t time.Time, ok bool) {
	end := bytes.Index(raw, []byte("\n\n"))
	if e2 := bytes.Index(raw, []byte("\r\n\r\n")); e2 >= 0 && (end < 0 || e2 < end) {
		end = e2
	}
	if end < 0 {
		end = len(raw)
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), raw[:end]...), "\r\n\r\n"...)))
	if err != nil {
		return time.Time{}, false
	}
	if rs := m.Header["Received"]; len(rs) > 0 {
		if i := strings.LastIndexByte(rs[0], ';'); i >= 0 {
			if t, err := mail.ParseDate(strings.TrimSpace(rs[0][i+1:])); err == nil {
				return t, true
			}
		}
	}
	if t, err := m.Header.Date(); err == nil {
		return t, true
	}
	return time.Time{}, false
}
