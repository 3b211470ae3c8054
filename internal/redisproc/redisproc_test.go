package redisproc

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestStartAndWait starts a real server, waits for it, and checks that a
// server that exits is reported instead of waited for.
func TestStartAndWait(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("HEALTHSCORE_REQUIRE_REDIS") == "1" {
			t.Fatal(err)
		}
		t.Skip("redis-server not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "hsp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cmd, sock, err := Command(dir, "--save", "", "--appendonly", "no")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	c := Client(sock)
	defer c.Close()
	if err := WaitReady(context.Background(), c, 10*time.Second, exited); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Kill()
	<-done
	start := time.Now()
	if err := WaitReady(context.Background(), c, 10*time.Second, exited); err == nil {
		t.Fatal("a killed server was reported ready")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("waited %s for a server that had exited", time.Since(start))
	}
}
