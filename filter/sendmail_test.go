package filter

// Sendmail interop (issue 8). What a real Sendmail 8.17 does with this
// filter is pinned by test/harness.TestSendmailMilterFacts and the suite
// in test/sendmail_test.go; these tests cover the filter's side of it
// without an MTA.

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
)

// TestSendmailExampleMacros: examples/sendmail.mc documents every macro
// the filter asks for, in the confMILTER_MACROS_* list of the stage it
// asks for it. (Sendmail ≥ 8.14 sends what the milter requests at
// negotiation anyway; the lists are what an operator reads.)
func TestSendmailExampleMacros(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "examples", "sendmail.mc"))
	if err != nil {
		t.Fatal(err)
	}
	lists := map[milter.MacroStage]string{
		milter.StageConnect: "CONNECT",
		milter.StageHelo:    "HELO",
		milter.StageMail:    "ENVFROM",
		milter.StageRcpt:    "ENVRCPT",
		milter.StageEOM:     "EOM",
	}
	for stage, names := range macroStages {
		if stage == milter.StageData && protocol&milter.OptNoData != 0 {
			continue // no DATA event, no DATA macros
		}
		list, ok := lists[stage]
		if !ok {
			t.Errorf("stage %d has no confMILTER_MACROS_* list in this test", stage)
			continue
		}
		m := regexp.MustCompile("(?m)^define\\(`confMILTER_MACROS_" + list + "', `([^']*)'\\)").FindSubmatch(text)
		if m == nil {
			t.Errorf("examples/sendmail.mc: no confMILTER_MACROS_%s", list)
			continue
		}
		have := map[string]bool{}
		for _, n := range strings.Split(string(m[1]), ",") {
			have[strings.TrimSpace(n)] = true
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("examples/sendmail.mc: confMILTER_MACROS_%s lacks %s, which the filter requests", list, n)
			}
		}
	}
}

// sendmailRoundTrip runs one message through a Server over the milter
// protocol the way Sendmail 8.17 sends it (every v6 protocol option
// offered, MAIL FROM without angle brackets, the queue id from MAIL on)
// and returns the modifications, the final action and the daemon's log.
func sendmailRoundTrip(t *testing.T, header [][2]string) ([]milter.ModifyAction, *milter.Action, *bytes.Buffer) {
	t.Helper()
	cfg, err := policy.Load("t.toml", []byte(`authserv_id = "mx.test"
trusted_networks = []
[[rule]]
name = "subject-space"
header = "Subject"
pattern = "^hello$"
score = 0.5
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	srv := New(Options{Holder: policy.NewHolder(p), Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.ms.Close() })

	offer := milter.OptNoConnect | milter.OptNoHelo | milter.OptNoMailFrom | milter.OptNoRcptTo | milter.OptNoBody |
		milter.OptNoHeaders | milter.OptNoEOH | milter.OptNoUnknown | milter.OptNoData | milter.OptSkip | milter.OptRcptRej |
		milter.OptNoHeaderReply | milter.OptNoConnReply | milter.OptNoHeloReply | milter.OptNoMailReply | milter.OptNoRcptReply |
		milter.OptNoDataReply | milter.OptNoUnknownReply | milter.OptNoEOHReply | milter.OptNoBodyReply | milter.OptHeaderLeadingSpace
	cl := milter.NewClient("tcp", ln.Addr().String(), milter.WithProtocols(offer),
		milter.WithActions(milter.AllClientSupportedActionMasks),
		milter.WithReadTimeout(10*time.Second), milter.WithWriteTimeout(10*time.Second))
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroMTAFQDN, "mx.sendmail.test")
	s, err := cl.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.ProtocolOption(milter.OptHeaderLeadingSpace) {
		t.Fatalf("SMFIP_HDR_LEADSPC offered but not negotiated")
	}
	step := func(a *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if a.Type != milter.ActionContinue {
			t.Fatalf("early answer %+v", a)
		}
	}
	step(s.Conn("client.example", milter.FamilyInet, 4000, "192.0.2.1"))
	step(s.Helo("client.example"))
	// QUIRK(sendmail): MAIL FROM comes without angle brackets.
	macros.Set(milter.MacroQueueId, "SMQ1") // from MAIL on
	step(s.Mail("sender@example.org", ""))
	step(s.Rcpt("<rcpt@example.net>", ""))
	step(s.DataStart())
	for _, h := range header {
		step(s.HeaderField(h[0], h[1], nil))
	}
	step(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(bytes.NewReader([]byte("body\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return mods, act, &logBuf
}

// TestSendmailSession: Sendmail (8.14 and later) offers SMFIP_HDR_LEADSPC
// and the filter asks for it: values arrive with the space after the
// colon, and the values we insert must carry exactly one.
// The forged Authentication-Results of our authserv-id goes (index 1, its
// own name's count, as Sendmail and Postfix number them), ours is
// inserted at index 0, and MAIL FROM without angle brackets (Sendmail)
// is the plain address in the log.
func TestSendmailSession(t *testing.T) {
	mods, act, logBuf := sendmailRoundTrip(t, [][2]string{
		{"Authentication-Results", " mx.test; spf=pass smtp.mailfrom=forged.example"},
		{"Subject", " hello"},
	})
	if act.Type != milter.ActionAccept {
		t.Fatalf("action %+v", act)
	}
	var deleted []milter.ModifyAction
	var ar *milter.ModifyAction
	for i, m := range mods {
		switch {
		case m.Type == milter.ActionInsertHeader && m.HeaderName == "Authentication-Results":
			ar = &mods[i]
		case m.Type == milter.ActionChangeHeader && m.HeaderValue == "":
			deleted = append(deleted, m)
		}
	}
	if len(deleted) != 1 || deleted[0].HeaderIndex != 1 || !strings.EqualFold(deleted[0].HeaderName, "Authentication-Results") {
		t.Errorf("deletions %+v, want Authentication-Results #1", deleted)
	}
	if ar == nil || ar.HeaderIndex != 0 || !strings.HasPrefix(ar.HeaderValue, " mx.test;") || strings.HasPrefix(ar.HeaderValue, "  ") {
		t.Errorf("inserted Authentication-Results %+v, want index 0 and value \" mx.test; ...\" (one space)", ar)
	}
	var line struct {
		From    string   `json:"from"`
		Reasons []string `json:"reasons"`
		QueueID string   `json:"queue_id"`
	}
	for _, l := range bytes.Split(logBuf.Bytes(), []byte("\n")) {
		if bytes.Contains(l, []byte(`"msg":"message"`)) {
			json.Unmarshal(l, &line)
		}
	}
	// The rule sees "hello": the policy's header values do not depend on
	// how the MTA sent the space.
	if line.From != "sender@example.org" || line.QueueID != "SMQ1" || len(line.Reasons) != 1 || line.Reasons[0] != "rule-subject-space" {
		t.Errorf("log line %+v\n%s", line, logBuf.String())
	}
}
