//go:build !sadebug

package sa

// dbgOn turns on the development counters of dbg_on.go (build tag
// sadebug); off, the calls compile away.
const dbgOn = false

var dbgRule string

func dbgScan(n int)        {}
func dbgDone(matched bool) {}

func dbgMulti(name string, n, matches int, nanos int64) {}
