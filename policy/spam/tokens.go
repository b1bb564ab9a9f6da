package spam

import (
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Tokenizer limits: a message yields at most this many distinct tokens, so
// that a huge or hostile message costs bounded time and store traffic.
const (
	maxTokens      = 3000
	maxTokenLen    = 40
	maxHeaderToks  = 400
	maxHeaderBytes = 64 << 10
)

// tokenHeaders are excluded from the Bayes tokens: values that are unique
// per message (they only bloat the store) or that describe the mailbox,
// not the message.
var noTokenHeaders = map[string]bool{
	"date": true, "message-id": true, "content-length": true, "lines": true,
	"status": true, "x-status": true, "x-keywords": true, "x-uid": true,
	"delivery-date": true, "x-original-date": true,
	"authentication-results": true, "arc-authentication-results": true,
	"dkim-signature": true, "arc-message-signature": true, "arc-seal": true,
	"received-spf": true,
}

// Tokens returns the distinct Bayes tokens of a message, in no particular
// order: words and
// word pairs of the decoded text parts (HTML reduced to text), words of most header
// fields prefixed by the field name, URL hosts, MIME structure and HTML tag
// names. Fields that ignore matches (X-Spam-* and our own status fields)
// never contribute: a corpus or another filter must not teach us its
// verdict.
func Tokens(m *message.Message, ignore *HeaderSet) []string {
	return tokens(m, ignore, messageURLs(m, maxURLs))
}

// maxURLs bounds the URLs looked at per message.
const maxURLs = 200

func tokens(m *message.Message, ignore *HeaderSet, urls []string) []string {
	t := tokenSet{seen: tokenSets.Get().(map[string]struct{})}
	defer func() {
		// Cleared, the map keeps its buckets for the next message.
		if len(t.seen) <= maxTokens {
			clear(t.seen)
			tokenSets.Put(t.seen)
		}
	}()
	nh := 0
	hbytes := 0
	for _, f := range m.Header {
		name := strings.ToLower(f.Name)
		if name == "message-id" && !ignore.Match(name) {
			// Unique per message, but its shape and domain are the
			// mailer's (ratware makes its own).
			id := strings.TrimSpace(message.Unfold(f.Value))
			t.add("mid-shape:", shape(id, 24))
			if _, dom, ok := strings.Cut(strings.Trim(id, "<>"), "@"); ok && dom != "" {
				t.add("mid:", strings.ToLower(registrable(dom)))
			}
			continue
		}
		if ignore.Match(name) || noTokenHeaders[name] {
			continue
		}
		if !routingHeader(name) {
			// Which fields a message has tells its mailer (X-MimeOLE,
			// X-MSMail-Priority, ...) as much as their words do.
			t.add("H*", name)
		}
		if !tokenHeaders[name] {
			continue
		}
		hbytes += len(f.Value)
		if hbytes > maxHeaderBytes || nh > maxHeaderToks {
			continue
		}
		v := message.DecodeHeader(message.Unfold(f.Value))
		switch name {
		case "subject":
			for _, w := range words(v, 60) {
				t.add("subj:", w)
				nh++
			}
			continue
		}
		for _, w := range words(v, 30) {
			t.add(name, ":", w)
			nh++
		}
	}
	for _, p := range m.Parts() {
		t.add("ct:", p.ContentType)
		if p.Filename != "" {
			if i := strings.LastIndexByte(p.Filename, '.'); i >= 0 && len(p.Filename)-i <= 6 {
				t.add("fext:", strings.ToLower(p.Filename[i+1:]))
			}
		}
		if p.Broken {
			t.add("mime:broken")
		}
		if p.ContentType == "text/html" {
			tagNames(p.Text, 200, func(name string) {
				t.add("tag:", strings.ToLower(name))
			})
		}
	}
	text := m.Text()
	for _, u := range urls {
		// Words of the URL path: "remove", "unsubscribe.cgi", "ref=".
		if i := strings.Index(u, "://"); i >= 0 {
			if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
				for _, w := range words(u[i+3+j:], 6) {
					t.add("urlpath:", w)
				}
			}
		}
		if h := urlHost(u); h != "" {
			t.add("url:", h)
			if d := registrable(h); d != h {
				t.add("url:", d)
			}
		}
	}
	// Word pairs too: "click here" and "remove you" say more than their
	// words (measured on the SpamAssassin corpus: fewer false positives
	// and higher recall at once).
	prev := ""
	wb := wordBufs.Get().(*[]string)
	defer func() { clear(*wb); wordBufs.Put(wb) }()
	*wb = appendWords((*wb)[:0], text, maxTokens)
	for _, w := range *wb {
		t.add(w)
		if prev != "" {
			t.add(prev, " ", w)
		}
		prev = w
		if len(t.seen) >= maxTokens {
			break
		}
	}
	out := make([]string, 0, len(t.seen))
	for k := range t.seen {
		out = append(out, k)
	}
	return out
}

// tokenHeaders are the fields whose words become tokens. Routing fields
// (Received, List-*, Sender) are left out on purpose: they describe the
// path, and spam that reached a mailing list would otherwise inherit the
// list's good name.
var tokenHeaders = map[string]bool{
	"subject": true, "from": true, "reply-to": true, "to": true, "cc": true,
	"content-type": true, "content-transfer-encoding": true, "mime-version": true,
	"x-mailer": true, "user-agent": true, "x-priority": true, "x-msmail-priority": true,
	"organization": true,
}

// routingHeader says a field describes the path (relays, lists,
// delivery), not the message: its presence is no token, for the reason
// routing fields' words are none (see tokenHeaders).
func routingHeader(name string) bool {
	switch name {
	case "received", "sender", "errors-to", "precedence", "mailing-list", "delivered-to",
		"return-path", "x-original-to", "envelope-to", "x-loop", "x-beenthere", "x-envelope-from",
		"x-envelope-to", "x-original-sender", "approved-by":
		return true
	}
	return strings.HasPrefix(name, "list-") || strings.HasPrefix(name, "x-mailman") ||
		strings.HasPrefix(name, "resent-") || strings.HasPrefix(name, "x-list")
}

// shape reduces s to the classes of its characters, runs collapsed:
// digits D, upper-case letters A, lower-case a, the rest as they are
// ("<20020823.GA1234@example.com>" is "<D.AD@a.a>"); at most n bytes.
func shape(s string, n int) string {
	var b strings.Builder
	var last byte
	for i := 0; i < len(s) && b.Len() < n; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c = 'D'
		case c >= 'A' && c <= 'Z':
			c = 'A'
		case c >= 'a' && c <= 'z':
			c = 'a'
		case c >= 0x80:
			c = '8'
		}
		if c != last {
			b.WriteByte(c)
			last = c
		}
	}
	return b.String()
}

// tokenSet collects distinct tokens. Tokens made of several strings are
// written into arena, a few large buffers, instead of one allocation per
// concatenation (a thousand per message, word pairs mostly).
type tokenSet struct {
	seen  map[string]struct{}
	arena *strings.Builder
}

// arenaChunk is the size of an arena buffer; a full one is left to the
// tokens that point into it and a new one started, never copied.
const arenaChunk = 8 << 10

// tokenSets and wordBufs recycle the per-message token set and word list:
// they were the tokenizer's largest allocations (a 512-entry map and a
// slice grown to thousands of words per message).
var (
	tokenSets = sync.Pool{New: func() any { return make(map[string]struct{}, 512) }}
	wordBufs  = sync.Pool{New: func() any { b := make([]string, 0, 1024); return &b }}
)

// add adds the concatenation of parts, cut to maxTokenLen bytes (whole
// runes). A token made of several parts is built on the stack and written
// to the arena only when it is new: word pairs repeat.
func (t *tokenSet) add(parts ...string) {
	if len(t.seen) >= maxTokens {
		return
	}
	if len(parts) == 1 {
		s := parts[0]
		if len(s) > maxTokenLen {
			s = s[:maxTokenLen]
			for !utf8.ValidString(s) {
				s = s[:len(s)-1]
			}
		}
		t.seen[s] = struct{}{}
		return
	}
	var buf [maxTokenLen]byte
	b := buf[:0]
	n := 0
	for _, p := range parts {
		n += len(p)
		b = append(b, p[:min(len(p), maxTokenLen-len(b))]...)
	}
	if n > maxTokenLen {
		for !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	if _, ok := t.seen[string(b)]; ok {
		return
	}
	t.seen[t.concat(b)] = struct{}{}
}

// concat writes b into the arena and returns it as a string. A
// strings.Builder never changes bytes it has handed out, so earlier tokens
// stay valid as the arena grows within its buffer.
func (t *tokenSet) concat(b []byte) string {
	if t.arena == nil || t.arena.Cap()-t.arena.Len() < len(b) {
		t.arena = new(strings.Builder)
		t.arena.Grow(max(len(b), arenaChunk))
	}
	start := t.arena.Len()
	t.arena.Write(b)
	return t.arena.String()[start:]
}

// tagNames calls f with the name of each tag in h, at most n: the
// submatches of <([A-Za-z][A-Za-z0-9]{0,10})\b, found without the regexp
// engine (the tests compare the two). A name is a letter and the letters
// and digits after it, at most 11 in all, not followed by '_'.
func tagNames(h string, n int, f func(name string)) {
	for i := 0; n > 0; {
		j := strings.IndexByte(h[i:], '<')
		if j < 0 {
			return
		}
		i += j + 1
		if i >= len(h) || !asciiLetter(h[i]) {
			continue
		}
		k := i + 1
		for k < len(h) && (asciiLetter(h[k]) || h[k] >= '0' && h[k] <= '9') {
			k++
		}
		if k-i > 11 || k < len(h) && h[k] == '_' {
			continue
		}
		f(h[i:k])
		n--
		i = k
	}
}

func asciiLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// words splits text into lower-case word tokens, at most n. Words of 3 to
// 20 characters are kept as they are (with a trailing '!' or '$' kept as a
// separate marker); longer ones become "skip:" tokens with their first
// character and length class, like SpamBayes, so that base64 noise and
// URLs do not flood the store.
func words(s string, n int) []string { return appendWords(nil, s, n) }

// appendWords is words appending to out.
func appendWords(out []string, s string, n int) []string {
	n += len(out)
	start := -1
	emit := func(w string) {
		if len(out) >= n {
			return
		}
		l := utf8.RuneCountInString(w)
		switch {
		case l < 3:
			return
		case l > 20:
			r, _ := utf8.DecodeRuneInString(w)
			out = append(out, "skip:"+string(r)+" "+strconv.Itoa(l/10*10))
		default:
			out = append(out, strings.ToLower(w))
		}
	}
	for i, r := range s {
		word := unicode.IsLetter(r) || unicode.IsDigit(r) || r == '$' || r == '\'' || r == '-' || r == '_'
		if word && r == utf8.RuneError {
			word = false
		}
		if word {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emit(strings.Trim(s[start:i], "'-_"))
			start = -1
		}
		if r == '!' && len(out) < n {
			out = append(out, "!")
		}
		if len(out) >= n {
			return out
		}
	}
	if start >= 0 {
		emit(strings.Trim(s[start:], "'-_"))
	}
	return out
}
