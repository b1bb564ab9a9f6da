package main

import (
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/autoreply"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/health"
	"github.com/mailwarden/mailwarden/policy/ratelimit"
	"github.com/mailwarden/mailwarden/policy/relay"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spool"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// modules lists every check module in pipeline order (independent checks
// run concurrently anyway; dependencies are declared by the checks).
// Adding a check means adding one line here and a section in
// examples/mailwarden.toml.
func modules() []policy.Module {
	return []policy.Module{
		// one line per module, e.g. auth.Module(),
		dns.Module(),
		auth.Module(),
		store.Module(),
		spam.Module(),
		ratelimit.Module(),
		autoreply.SRSModule(),
		autoreply.Module(),
		virus.ClamAVModule(),
		virus.Module(),
		relay.Module(), relay.LocalOnlyModule(), spool.Module(), health.Module(), controlModule(), metricsModule(), // operations
	}
}
