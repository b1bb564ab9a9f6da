package filter

import (
	"context"
	"testing"
	"time"
)

// An MTA keeps its milter connection open between messages. Shutdown must
// not wait the whole grace period for such an idle connection: with no
// message in flight it closes it and returns at once (before the context
// ends, so without error).
func TestShutdownDoesNotWaitForIdleConnections(t *testing.T) {
	ts := startServer(t, "")
	ts.connect(t, allProtocol) // connected and greeted, no transaction
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with only an idle connection: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Shutdown waited for the grace period")
	}
}
