//go:build !sadebug

package sa

import "time"

// dbgOn turns on the development counters of dbg_on.go (build tag
// sadebug); off, the calls compile away.
const dbgOn = false

var dbgRule string

func dbgScan(n int)        {}
func dbgDone(matched bool) {}

func dbgBT(rule string, stage int, hit bool, d time.Duration) {}

const (
	dbgBTCall = iota
	dbgBTPass
	dbgBTRun
	dbgBTLook
)

func dbgMulti(name string, n, matches int, nanos int64) {}
