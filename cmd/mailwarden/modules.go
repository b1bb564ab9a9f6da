package main

import (
	"github.com/mailwarden/mailwarden/policy"
)

// modules lists every check module in pipeline order (independent checks
// run concurrently anyway; dependencies are declared by the checks).
// Adding a check means adding one line here and a section in
// examples/mailwarden.toml.
func modules() []policy.Module {
	return []policy.Module{
		// one line per module, e.g. auth.Module(),
	}
}
