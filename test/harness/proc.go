package harness

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// proc is a server process a test started in the foreground: its command
// and a channel closed when it exits.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start starts cmd and watches for its exit.
func (p *proc) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.done)
	return nil
}

// waitReady polls ready every 100 ms until it succeeds, the process exits
// or timeout passes.
func (p *proc) waitReady(name string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("harness: %s exited during start", name)
		default:
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: %s not ready within %v: %v", name, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop terminates the process and waits for it (idempotent): SIGTERM,
// then SIGKILL after 10 s.
func (p *proc) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
