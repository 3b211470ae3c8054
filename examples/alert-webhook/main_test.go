package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "url")
	if err := os.WriteFile(file, []byte("  https://hooks.example.com/services/FROMFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ALERT_WEBHOOK_BROKERS": "k1:9092, k2:9092", "ALERT_WEBHOOK_GROUP": "from-env", "ALERT_WEBHOOK_FROM_START": "true",
		"ALERT_WEBHOOK_DEDUP_IDS": "500", "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/FROMENV",
	}
	cfg, err := parseConfig([]string{"--group", "from-flag"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Brokers, []string{"k1:9092", "k2:9092"}) || cfg.Group != "from-flag" || !cfg.FromStart ||
		cfg.DedupIDs != 500 || cfg.Topic != DefaultTopic || !strings.HasSuffix(cfg.WebhookURL, "FROMENV") {
		t.Errorf("from env: %+v", cfg)
	}
	env["ALERT_WEBHOOK_URL_FILE"] = file // the file wins over ALERT_WEBHOOK_URL
	if cfg, err = parseConfig(nil, func(k string) string { return env[k] }); err != nil || cfg.WebhookURL != "https://hooks.example.com/services/FROMFILE" {
		t.Errorf("from file: %q, %v", cfg.WebhookURL, err)
	}
	if _, err := parseConfig([]string{"--webhook-url-file", filepath.Join(dir, "missing")}, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := parseConfig([]string{"extra"}, func(string) string { return "" }); err == nil {
		t.Error("an argument was accepted")
	}
	env = map[string]string{"ALERT_WEBHOOK_DEDUP_IDS": "lots", "ALERT_WEBHOOK_FROM_START": "yes please"}
	if _, err := parseConfig(nil, func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), `ALERT_WEBHOOK_DEDUP_IDS="lots": want an integer`) || !strings.Contains(err.Error(), "ALERT_WEBHOOK_FROM_START") {
		t.Errorf("bad environment: %v", err)
	}
	cfg, err = parseConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = zaptest.NewLogger(t)
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "ALERT_WEBHOOK_URL") {
		t.Errorf("no URL: %v", err)
	}
}

// TestExampleBinary builds the command and runs it as an operator would:
// the URL in a file, a webhook that fails once, then SIGTERM. It posts both
// alerts, commits them, exits 0, logs JSON lines, and its logs never show
// the URL. A bad URL exits 2 without showing it either.
func TestExampleBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "alert-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "--brokers", "127.0.0.1:1")
	cmd.Env = append(os.Environ(), "ALERT_WEBHOOK_URL=ftp://hooks.example.com/SECRET")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Contains(string(out), "SECRET") || !strings.Contains(string(out), "webhook URL") {
		t.Errorf("bad URL: %v\n%s", err, out)
	}

	b := newBroker(t, 1)
	h := newHook(t, func(n int, _ string) (int, string) {
		if n == 0 {
			return 500, ""
		}
		return 200, ""
	}, nil)
	urlFile := filepath.Join(t.TempDir(), "webhook-url")
	if err := os.WriteFile(urlFile, []byte(h.URL+"/services/T0001/B0001/SECRETxyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.produce(t, alertRecord(t, "customer-0", 0), alertRecord(t, "customer-1", 1))

	var stderr bytes.Buffer
	cmd = exec.Command(bin, "--brokers", strings.Join(b.addrs, ","), "--topic", b.topic, "--group", b.group, "--from-start",
		"--webhook-url-file", urlFile, "--min-backoff", "10ms")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, "both offsets committed", func() bool { return b.committed(t) == 2 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM\n%s", stderr.String())
	}
	if got := h.posted(); len(got) != 2 || got[0] == got[1] {
		t.Errorf("posted %v", got)
	}
	logs := stderr.String()
	if strings.Contains(logs, "SECRET") || strings.Contains(logs, "/services/") {
		t.Errorf("the webhook URL is in the log:\n%s", logs)
	}
	for _, msg := range []string{"relaying alerts", "webhook post failed; retrying", "alert-webhook stopped"} {
		if !strings.Contains(logs, `"msg":"`+msg+`"`) {
			t.Errorf("no %q in the log:\n%s", msg, logs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON log line: %s", line)
		}
	}
}
