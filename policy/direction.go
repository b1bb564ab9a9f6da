package policy

import "github.com/mailwarden/mailwarden/policy/message"

// Direction says where a message goes relative to us.
type Direction string

const (
	DirInbound  Direction = "inbound"  // from outside to a local domain
	DirOutbound Direction = "outbound" // from us (authenticated, trusted network, local submission) to outside
	DirInternal Direction = "internal" // from us to local domains only
	DirRelay    Direction = "relay"    // from outside to outside: a relay attempt
)

// FromUs reports whether the client is ours: SASL-authenticated, in
// trusted_networks, or a local submission (sendmail(1): no client address).
//
// QUIRK(postfix): Postfix sends no {auth_authen} macro for an
// unauthenticated client; an empty value must not count as authenticated.
func (c *Config) FromUs(client message.Client, auth string) bool {
	if auth != "" {
		return true
	}
	if !client.Addr.IsValid() {
		return true // local submission
	}
	return c.TrustedNetworks.Contains(client.Addr)
}

// Direction classifies a message by its client and recipients. With no
// local_domains configured, every recipient counts as local.
func (c *Config) Direction(client message.Client, auth string, rcpts []string) Direction {
	local := 0
	for _, r := range rcpts {
		if len(c.LocalDomains) == 0 || c.IsLocalDomain(message.Domain(r)) {
			local++
		}
	}
	allLocal := local == len(rcpts)
	switch {
	case c.FromUs(client, auth) && allLocal:
		return DirInternal
	case c.FromUs(client, auth):
		return DirOutbound
	case local > 0:
		return DirInbound
	}
	return DirRelay
}

// DirectionOf classifies a message (see Direction).
func (c *Config) DirectionOf(m *message.Message) Direction {
	return c.Direction(m.Client, m.Auth, m.Rcpts)
}
