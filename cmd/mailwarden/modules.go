package main

import (
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/metrics"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/policy"
)

// sections is the schema of the config file: every module's and service's
// section (wire.Sections) plus the daemon's own.
func sections() []policy.Module {
	return wire.Sections(append(daemon.Sections(), control.Section(), metrics.Section())...)
}
