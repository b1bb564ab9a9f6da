package virus

import "time"

// SetAfter replaces the wait timer of l (tests only).
func SetAfter(l *Limited, after func(time.Duration) <-chan time.Time) { l.after = after }
