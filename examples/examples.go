// Package examples holds the example files shipped with mailwarden. The
// commented mailwarden.toml is also the documented default configuration
// (`mailwarden config default` prints it); a test parses it so it cannot
// rot.
package examples

import _ "embed"

// DefaultConfig is examples/mailwarden.toml.
//
//go:embed mailwarden.toml
var DefaultConfig []byte
