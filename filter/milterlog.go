package filter

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/d--j/go-milter"
)

// SetMilterLogger routes go-milter's warnings (a connection closed in the
// middle of a command, an unknown command code, macros the MTA sent
// twice) to l at warning level, with the attribute library="go-milter".
// By default go-milter prints "milter: warning: ..." with the log package
// on stderr, which breaks a JSON log. The setting is process-wide, like
// go-milter's milter.LogWarning.
func SetMilterLogger(l *slog.Logger) {
	milter.LogWarning = func(format string, v ...any) {
		l.Warn("library warning", "library", "go-milter", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}
