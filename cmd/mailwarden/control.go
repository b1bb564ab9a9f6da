package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/policy"
)

// Status implements control.Daemon.
func (d *server) Status() *control.Status {
	p := d.pipeline()
	s := &control.Status{
		Version: versionString(), PID: os.Getpid(), Mode: p.Mode(), ConfiguredMode: p.Config().Mode,
		Started: d.started.UTC().Truncate(time.Second), UptimeSeconds: time.Since(d.started).Round(time.Second).Seconds(),
		Config: configName(d.cfgPath), Checks: p.Checks(), Reloads: d.reloads.Load(), ReloadFailures: d.failed.Load(),
		Listen: daemon.ListenOf(p.Config()).Address,
	}
	_, s.Override = d.modes.Get()
	s.Goroutines = runtime.NumGoroutine()
	if d.srv != nil {
		s.InFlight = d.inflight()
		s.Connections = d.srv.Conns()
		s.BodyMemory = d.srv.BodyMemory()
	}
	if o := d.ops; o != nil {
		s.Health, s.Spool = o.Snapshot()
	}
	return s
}

// SetMode implements control.Daemon: the run-time mode override. It takes
// effect for the next message and outlives config reloads; it is lost on
// restart.
func (d *server) SetMode(mode string, uid int) error {
	old := d.pipeline().Mode()
	if mode == "config" {
		d.modes.Clear()
	} else {
		m, err := policy.ParseMode(mode)
		if err != nil {
			return err
		}
		d.modes.Set(m)
	}
	cur := d.pipeline().Mode()
	d.logger.Warn("mode changed", "from", string(old), "to", string(cur), "override", mode != "config", "uid", uid)
	if o := d.ops; o != nil {
		o.ModeChanged()
	}
	return nil
}

// startControl opens the control socket of the config in force.
func startControl(d *server) (func(), error) {
	return control.Start(control.ConfigOf(d.cfg()), d, d.logger)
}

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
