package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

const consistentLog = `{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"message","queue_id":"HELD1","client":"192.0.2.1","from":"a@spam.example","rcpts":["u@example.org"],"action":"quarantine","would_be":"quarantine","reasons":["spam-score","spam-bayes-99"]}
{"time":"2026-12-01T10:01:00Z","level":"INFO","msg":"message","queue_id":"OK1","client":"192.0.2.2","from":"b@ok.example","rcpts":["u@example.org"],"action":"accept","reasons":[]}
{"time":"2026-12-01T10:02:00Z","level":"ERROR","msg":"config reload refused","error":"changed keys that only a restart applies: metrics.address"}
{"time":"2026-12-01T10:03:00Z","level":"ERROR","msg":"config reload refused","file":"/etc/mailwarden/mailwarden.toml","line":3,"key":"mode","error":"unknown mode \"x\""}
`

// TestReportOutputsConsistent (issue 17.8): JSON keys are snake_case like
// check --json (no Go field names, no zero since); the HTML page has the
// reason-code table the text has and the held ids; refused reloads are
// operations events in every output.
func TestReportOutputsConsistent(t *testing.T) {
	rep := New(DefaultOptions())
	if err := rep.Read(strings.NewReader(consistentLog)); err != nil {
		t.Fatal(err)
	}
	rep = rep.Finish()

	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(js, &m)
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for k := range m {
		if !snake.MatchString(k) {
			t.Errorf("report --json key %q is not snake_case", k)
		}
	}
	if _, ok := m["since"]; ok {
		t.Errorf("a zero since is in the JSON: %s", js)
	}
	if !strings.Contains(string(js), `"queue_id":"HELD1"`) || !strings.Contains(string(js), `"kind":"reload-refused"`) {
		t.Errorf("JSON lacks the held id or the refused reload: %s", js)
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"held (quarantined) messages: 1", "id=HELD1", "reload-refused", "metrics.address", "mode: unknown mode", "spam-bayes-99"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var html bytes.Buffer
	rep.WriteHTML(&html, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	for _, want := range []string{`id="reasons"`, "<td>spam-bayes-99</td>", "Held (quarantined) messages", "<td>HELD1</td>", "reload-refused"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}
