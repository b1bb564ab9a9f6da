package main

import (
	"fmt"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
)

// controlSocket is the socket the control clients use: the flag, or the
// config's [control] socket.
func controlSocket(cfgPath, socket string) (string, error) {
	if socket != "" {
		return socket, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return "", err
	}
	return control.ConfigOf(cfg).Socket, nil
}

func formatUptime(sec float64) string {
	d := time.Duration(sec) * time.Second
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd%s", days, d.String())
	}
	return d.String()
}
