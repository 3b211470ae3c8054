package modelwatch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/scorer"
)

func modelWithVersion(t *testing.T, v string) []byte {
	t.Helper()
	y := strings.Replace(string(scorer.DefaultModelYAML()), `version: "2026.11.1"`, `version: "`+v+`"`, 1)
	if !strings.Contains(y, v) {
		t.Fatal("the default model's version line changed; update this test")
	}
	return []byte(y)
}

func counter(t *testing.T, c *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestReload: a changed valid file is loaded; a bad one keeps the old model
// and logs its errors with their line; a signal reloads even unchanged.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.yaml")
	if err := os.WriteFile(path, modelWithVersion(t, "v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	cur, err := scorer.ParseModel(path, modelWithVersion(t, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var loaded []string
	core, logs := observer.New(zap.InfoLevel)
	sig := make(chan os.Signal, 1)
	w, err := New(Config{Path: path, Interval: 10 * time.Millisecond, Reload: sig, Current: cur,
		OnLoad: func(m *scorer.Model) { mu.Lock(); loaded = append(loaded, m.Version); mu.Unlock() },
		Logger: zap.New(core), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	versions := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(loaded, ",") }

	// Files are replaced atomically (as a ConfigMap update does): the
	// watcher polls every 10 ms and could read a half-written file.
	write := func(b []byte) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}

	// A bad file: the old model stays. The counter is bumped before the
	// error is logged, so wait for both.
	bad := strings.Replace(string(modelWithVersion(t, "v2")), "target: 4,", "target: -4,", 1)
	write([]byte(bad))
	waitFor("the invalid reload", func() bool {
		return counter(t, w.reloads, "invalid") == 1 && len(logs.FilterMessageSnippet("invalid").All()) == 1
	})
	if v := versions(); v != "" {
		t.Fatalf("a bad file was loaded: %s", v)
	}
	errs := logs.FilterMessageSnippet("invalid").All()
	if len(errs) != 1 || !strings.Contains(errs[0].ContextMap()["errors"].(string), "model.yaml:") ||
		!strings.Contains(errs[0].ContextMap()["errors"].(string), "target must be > 0") {
		t.Fatalf("the bad model's errors were not logged with their line: %+v", errs)
	}

	// A valid change is loaded.
	write(modelWithVersion(t, "v3"))
	waitFor("v3", func() bool { return versions() == "v3" })

	// A signal reloads the unchanged file.
	sig <- os.Interrupt
	waitFor("the forced reload", func() bool { return versions() == "v3,v3" })
	if got := counter(t, w.reloads, "ok"); got != 2 {
		t.Errorf("%v ok reloads, want 2", got)
	}
}
