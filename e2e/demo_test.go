package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command as `healthscore run --demo`
// (embedded broker, embedded Redis, synthetic customers) and waits for what
// the README promises: health.low alerts within about a minute, and a ready
// service.
func TestDemo(t *testing.T) {
	s := startService(t, "--demo")
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(s.logs.String(), `"msg":"demo: alert published","type":"health.low"`) {
		if time.Now().After(deadline) {
			t.Fatal("no health.low alert within 90 s of the demo's start")
		}
		time.Sleep(500 * time.Millisecond)
	}
	resp, err := s.client.Get(s.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %s", resp.Status)
	}
}
