// Package redisproc owns what every local redis-server of the project has in
// common: the command for a server on a unix socket in its own directory
// (no TCP port, no daemonizing), and waiting until it answers PING. The
// callers (test environment, benchmark harness, fault suite) keep their own
// lifecycles and add their persistence settings.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
)

// Command returns a redis-server command that listens only on dir/redis.sock
// and keeps its files in dir, with the listpack limit the state layout asks
// for (hash-max-listpack-value 512, see state.CheckLayout) and extra
// arguments appended (e.g. "--save", "", "--appendonly", "no"). dir must be
// short: unix socket paths are limited to about 100 bytes.
func Command(dir string, extra ...string) (cmd *exec.Cmd, sock string, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("redis-server not found in PATH (Debian: apt-get install redis-server): %w", err)
	}
	sock = filepath.Join(dir, "redis.sock")
	args := append([]string{
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--daemonize", "no",
		"--dir", dir,
		"--hash-max-listpack-value", "512",
	}, extra...)
	return exec.Command(bin, args...), sock, nil
}

// Client returns a client of the server on sock.
func Client(sock string) *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1})
}

// WaitReady pings through c until the server answers, timeout passes, or
// exited (when not nil) reports that the process is gone. A server still
// loading its append-only file answers LOADING and is waited for.
func WaitReady(ctx context.Context, c *redis.Client, timeout time.Duration, exited func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		switch {
		case err == nil:
			return nil
		case exited != nil && exited():
			return fmt.Errorf("redis-server exited: %w", err)
		case ctx.Err() != nil:
			return errors.Join(err, ctx.Err())
		case time.Now().After(deadline):
			return fmt.Errorf("no answer to PING in %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
