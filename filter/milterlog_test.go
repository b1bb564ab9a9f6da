package filter

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/d--j/go-milter"
)

func TestSetMilterLogger(t *testing.T) {
	saved := milter.LogWarning
	defer func() { milter.LogWarning = saved }()
	var buf bytes.Buffer
	SetMilterLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	milter.LogWarning("Unrecognized command code: %s", "X")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if m["level"] != "WARN" || m["library"] != "go-milter" || m["detail"] != "Unrecognized command code: X" {
		t.Errorf("got %v", m)
	}
}
