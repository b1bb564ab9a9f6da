package quarantine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

// testIndex is the contract every Index passes.
func testIndex(t *testing.T, ix Index) {
	ctx := context.Background()
	if _, err := ix.Get(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing id: %v", err)
	}
	it, _ := newItem(Meta{Recipients: []string{"a@x", "b@x"}, Category: CategorySpam, Reasons: []string{"spam-score"}}, ModeStore, t0)
	if err := ix.Put(ctx, it); err != nil {
		t.Fatal(err)
	}
	got, err := ix.Get(ctx, it.ID)
	if err != nil || got.ID != it.ID || got.Category != CategorySpam || len(got.Recipients) != 2 || !got.Time.Equal(t0) {
		t.Fatalf("Get: %+v %v", got, err)
	}
	// concurrent updates of one item all land
	const n = 20
	big, _ := newItem(Meta{Recipients: func() []string {
		var r []string
		for i := range n {
			r = append(r, fmt.Sprintf("r%d@x", i))
		}
		return r
	}(), Category: CategorySpam}, ModeStore, t0)
	ix.Put(ctx, big)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := ix.Update(ctx, big.ID, func(x *Item) error {
				return transition(x, fmt.Sprintf("r%d@x", i), StateReleased, "t", t0)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ = ix.Get(ctx, big.ID)
	if got.Held() {
		t.Errorf("lost updates: %+v", got.Recipients)
	}
	// an error of fn aborts
	boom := errors.New("boom")
	if _, err := ix.Update(ctx, it.ID, func(x *Item) error { x.Score = 99; return boom }); !errors.Is(err, boom) {
		t.Errorf("Update error: %v", err)
	}
	if got, _ := ix.Get(ctx, it.ID); got.Score == 99 {
		t.Error("aborted update was stored")
	}
	if _, err := ix.Update(ctx, "ffffffffffffffffffffffffffffffff", func(*Item) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of missing: %v", err)
	}
	seen := 0
	ix.Scan(ctx, func(*Item) bool { seen++; return true })
	if seen != 2 {
		t.Errorf("Scan saw %d", seen)
	}
	if err := ix.Remove(ctx, it.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Get(ctx, it.ID); !errors.Is(err, ErrNotFound) {
		t.Error("removed item still there")
	}
	for i := range 3 {
		ix.AppendAudit(ctx, AuditEntry{Time: t0, Actor: fmt.Sprint(i), Action: ActionRelease})
	}
	log, err := ix.Audit(ctx, 2)
	if err != nil || len(log) != 2 || log[0].Actor != "2" || log[1].Actor != "1" {
		t.Errorf("Audit: %+v %v", log, err)
	}
	if p, err := ix.Pref(ctx, "new@x"); err != nil || p.Digest != FrequencyDaily {
		t.Errorf("default pref: %+v %v", p, err)
	}
	ix.SetPref(ctx, "A@X", Pref{Digest: FrequencyWeekly, LastDigest: t0})
	if p, _ := ix.Pref(ctx, "a@x"); p.Digest != FrequencyWeekly || !p.LastDigest.Equal(t0) {
		t.Errorf("pref: %+v", p)
	}
	// sender lists: per recipient, one entry per sender, replaced in place
	if k, err := ix.LookupSender(ctx, "s@y", []string{"a@x"}); err != nil || !slices.Equal(k, []ListKind{0}) {
		t.Errorf("lookup on an empty list: %v %v", k, err)
	}
	ix.SetSender(ctx, "a@x", SenderEntry{Sender: "s@y", Kind: ListDeny, By: "a@x", At: t0})
	ix.SetSender(ctx, "a@x", SenderEntry{Sender: "s@y", Kind: ListAllow, By: "a@x", At: t0})
	ix.SetSender(ctx, "a@x", SenderEntry{Sender: "t@y", Kind: ListDeny, By: "admin", At: t0})
	ix.SetSender(ctx, "a@xx", SenderEntry{Sender: "u@y", Kind: ListDeny, By: "admin", At: t0})
	if k, err := ix.LookupSender(ctx, "s@y", []string{"b@x", "a@x", "a@xx"}); err != nil || !slices.Equal(k, []ListKind{0, ListAllow, 0}) {
		t.Errorf("lookup: %v %v (one recipient's entry only, in order)", k, err)
	}
	if k, _ := ix.LookupSender(ctx, "t@y", []string{"a@x", "a@xx"}); !slices.Equal(k, []ListKind{ListDeny, 0}) {
		t.Errorf("lookup of t@y: %v", k)
	}
	if l, err := ix.Senders(ctx, "a@x"); err != nil || len(l) != 2 {
		t.Errorf("Senders: %+v %v (a@xx's entry must not show)", l, err)
	}
	if ok, err := ix.RemoveSender(ctx, "a@x", "s@y"); !ok || err != nil {
		t.Errorf("RemoveSender: %v %v", ok, err)
	}
	if ok, _ := ix.RemoveSender(ctx, "a@x", "s@y"); ok {
		t.Error("second RemoveSender found it")
	}
	if k, _ := ix.LookupSender(ctx, "s@y", []string{"a@x"}); len(k) != 1 || k[0] != 0 {
		t.Errorf("lookup after removal: %v", k)
	}
}

func TestBoltIndex(t *testing.T) {
	ix, err := OpenBolt(filepath.Join(t.TempDir(), "q.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	testIndex(t, ix)
}

// The lists survive a restart (the file is closed and opened again).
func TestBoltSendersSurviveReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "q.db")
	ix, err := OpenBolt(p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ix.SetSender(context.Background(), "a@x", SenderEntry{Sender: "s@y", Kind: ListAllow})
	ix.Close()
	if ix, err = OpenBolt(p, time.Second); err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if k, err := ix.LookupSender(context.Background(), "s@y", []string{"a@x"}); err != nil || k[0] != ListAllow {
		t.Errorf("after reopen: %v %v", k, err)
	}
}

func TestBoltIndexLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "q.db")
	ix, err := OpenBolt(p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := OpenBolt(p, 50*time.Millisecond); !errors.Is(err, ErrUnavailable) {
		t.Errorf("second open of a locked file: %v", err)
	}
}

func TestRedisIndex(t *testing.T) {
	addr := harness.StartRedis(t)
	ix, err := NewRedisIndex("redis://"+addr+"/0", "test:q:", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	testIndex(t, ix)
}

func TestRedisIndexDown(t *testing.T) {
	ix, _ := NewRedisIndex("redis://127.0.0.1:1/0", "q:", 200*time.Millisecond)
	defer ix.Close()
	it, _ := newItem(Meta{Recipients: []string{"a@x"}, Category: CategorySpam}, ModeStore, t0)
	if err := ix.Put(context.Background(), it); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put with Redis down: %v", err)
	}
}
