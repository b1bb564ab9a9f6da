//go:build sadebug

package sa

import "time"

// dbgOn: the development counters are on (go test -tags sadebug): how
// many bytes the rules' own automata scan, per rule, and how many of the
// runs end without a match (the screens' false candidates). Single
// goroutine only.
const dbgOn = true

// DFAStat is what one rule's automata did.
type DFAStat struct{ Runs, Hits, Bytes, MissBytes int64 }

var (
	dbgDFAStats = map[string]*DFAStat{}
	dbgRule     string
	dbgBytes    int64
)

func dbgScan(n int) { dbgBytes += int64(n) }

func dbgDone(matched bool) {
	s := dbgDFAStats[dbgRule]
	if s == nil {
		s = &DFAStat{}
		dbgDFAStats[dbgRule] = s
	}
	s.Runs++
	s.Bytes += dbgBytes
	if matched {
		s.Hits++
	} else {
		s.MissBytes += dbgBytes
	}
	dbgBytes = 0
}

// Stages of a backtracking rule's run (dbgBT): called, past the RE2
// screen's automaton, the backtracking engine run.
const (
	dbgBTCall = iota
	dbgBTPass
	dbgBTRun
	dbgBTLook
)

// BTStat is what one backtracking rule cost: calls, how many got past
// the automaton, how many the backtracking engine ran, its hits and time,
// and how many the lookahead automata (lookRule) answered, and their time.
type BTStat struct {
	Calls, Pass, Runs, Hits int64
	Time                    time.Duration
	Looks                   int64
	LookTime                time.Duration
}

var dbgBTStats = map[string]*BTStat{}

func dbgBT(rule string, stage int, hit bool, d time.Duration) {
	s := dbgBTStats[rule]
	if s == nil {
		s = &BTStat{}
		dbgBTStats[rule] = s
	}
	switch stage {
	case dbgBTCall:
		s.Calls++
	case dbgBTPass:
		s.Pass++
	case dbgBTRun:
		s.Runs++
		s.Time += d
		if hit {
			s.Hits++
		}
	case dbgBTLook:
		s.Looks++
		s.LookTime += d
	}
}

// MultiStat is what one multiple-hit rule's FindAll fallback did.
type MultiStat struct{ Calls, Bytes, Matches, Nanos int64 }

var dbgMultiStats = map[string]*MultiStat{}

// dbgMulti records a multiple-hit count done by the regexp.
func dbgMulti(name string, n, matches int, nanos int64) {
	s := dbgMultiStats[name]
	if s == nil {
		s = &MultiStat{}
		dbgMultiStats[name] = s
	}
	s.Calls++
	s.Bytes += int64(n)
	s.Matches += int64(matches)
	s.Nanos += nanos
}
