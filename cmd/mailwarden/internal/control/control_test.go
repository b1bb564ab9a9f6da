package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

type fakeDaemon struct {
	learned [][]byte
	checked []CheckRequest
}

func (f *fakeDaemon) Status() *Status {
	return &Status{Version: "test", Mode: policy.ModeEnforce, ConfiguredMode: policy.ModeEnforce}
}
func (f *fakeDaemon) SetMode(mode string, uid int) error { return nil }
func (f *fakeDaemon) Check(ctx context.Context, req CheckRequest, raw []byte) (string, int, error) {
	f.checked = append(f.checked, req)
	return "checked " + string(raw), 2, nil
}
func (f *fakeDaemon) Learn(ctx context.Context, req LearnRequest, raw []byte) (*LearnResult, error) {
	f.learned = append(f.learned, raw)
	return &LearnResult{Changed: true, Spam: int64(len(f.learned))}, nil
}

// TestProtocolCarriesMessages: check and learn requests carry a message
// of any bytes (newlines included) after their line, several per
// connection; a bad class or an oversized message is refused.
func TestProtocolCarriesMessages(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	f := &fakeDaemon{}
	stop, err := Start(&Config{Socket: sock}, f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("Subject: x\r\n\r\nline one\nline two {\"cmd\":\"mode\"}\n")
	for range 2 {
		resp, err := c.Do(Request{Cmd: "learn", Learn: &LearnRequest{Class: "spam"}}, msg)
		if err != nil || !resp.Learned.Changed {
			t.Fatalf("learn: %+v %v", resp, err)
		}
	}
	if len(f.learned) != 2 || string(f.learned[1]) != string(msg) {
		t.Fatalf("learned %q", f.learned)
	}
	resp, err := c.Do(Request{Cmd: "check", Check: &CheckRequest{JSON: true}}, []byte("abc"))
	if err != nil || resp.Output != "checked abc" || resp.ExitCode != 2 || !f.checked[0].JSON {
		t.Fatalf("check: %+v %v", resp, err)
	}
	if _, err := c.Do(Request{Cmd: "learn", Learn: &LearnRequest{Class: "eggs"}}, msg); err == nil || !strings.Contains(err.Error(), "spam") {
		t.Errorf("bad class: %v", err)
	}
	c2, _ := Dial(sock)
	defer c2.Close()
	if _, err := c2.Do(Request{Cmd: "status", Size: MaxMessage + 1}, nil); err != nil {
		t.Errorf("status: %v", err) // Do sets Size from the body: this is a plain status
	}
}
