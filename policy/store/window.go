package store

import (
	"encoding/binary"
	"strconv"
	"time"
)

// event is one admitted request in a sliding window: when, and how many
// events it counted for.
type event struct {
	at   int64 // unix microseconds
	cost uint32
}

// prune drops the events that left the window (now-period, now].
func prune(evs []event, now time.Time, period time.Duration) []event {
	cut := now.Add(-period).UnixMicro()
	i := 0
	for i < len(evs) && evs[i].at <= cut {
		i++
	}
	return evs[i:]
}

func count(evs []event) int {
	n := 0
	for _, e := range evs {
		n += int(e.cost)
	}
	return n
}

// encodeEvents is the Bolt/memory representation: 12 bytes per event.
func encodeEvents(evs []event) []byte {
	b := make([]byte, 0, 12*len(evs))
	for _, e := range evs {
		b = binary.BigEndian.AppendUint64(b, uint64(e.at))
		b = binary.BigEndian.AppendUint32(b, e.cost)
	}
	return b
}

func decodeEvents(b []byte) []event {
	evs := make([]event, 0, len(b)/12)
	for len(b) >= 12 {
		evs = append(evs, event{int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:])})
		b = b[12:]
	}
	return evs
}

// takeAll is Take over an abstract per-key state: load returns a window's
// events, save stores them back. The caller provides atomicity.
func takeAll(ws []Window, now time.Time, load func(key string) []event, save func(key string, evs []event, period time.Duration)) int {
	pruned := make([][]event, len(ws))
	for i, w := range ws {
		evs := prune(load(w.Key), now, w.Period)
		if count(evs)+w.cost() > w.Limit {
			return i
		}
		pruned[i] = evs
	}
	at := now.UnixMicro()
	for i, w := range ws {
		evs := pruned[i]
		if n := len(evs); n > 0 && evs[n-1].at == at {
			// Same microsecond: one record (bursts stay small on disk).
			evs[n-1].cost += uint32(w.cost())
		} else {
			evs = append(evs, event{at: at, cost: uint32(w.cost())})
		}
		save(w.Key, evs, w.Period)
	}
	return -1
}

// parseCounter reads a counter value; a non-number counts as 0, like a
// fresh key (Redis would refuse; callers never mix counters and values).
func parseCounter(b []byte) int64 {
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}
