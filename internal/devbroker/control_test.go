package devbroker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestNames(t *testing.T) {
	for name, want := range map[string]kmsg.Key{"produce": kmsg.Produce, "offset_commit": kmsg.OffsetCommit, "OffsetCommit": kmsg.OffsetCommit, "join-group": kmsg.JoinGroup} {
		if got, err := APIKey(name); err != nil || got != want {
			t.Errorf("APIKey(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := APIKey("nope"); err == nil {
		t.Error("APIKey(nope): no error")
	}
	if e, err := KafkaError("not_leader_for_partition"); err != nil || e != kerr.NotLeaderForPartition {
		t.Errorf("KafkaError: %v, %v", e, err)
	}
	if _, err := KafkaError("NO_SUCH_ERROR"); err == nil {
		t.Error("KafkaError(NO_SUCH_ERROR): no error")
	}
}

// TestControlHandler injects a produce fault and an outage over HTTP and
// sees a client hit both.
func TestControlHandler(t *testing.T) {
	b, err := Start(Config{Partitions: 1, Topics: []string{"t"}, MaxSessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv := httptest.NewServer(b.ControlHandler())
	defer srv.Close()
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("/faults", `{"api":"produce","error":"INVALID_RECORD","count":1}`); c != http.StatusNoContent {
		t.Fatalf("POST /faults: %d", c)
	}
	if c := post("/faults", `{"api":"bogus"}`); c != http.StatusBadRequest {
		t.Fatalf("POST /faults with a bad api: %d, want 400", c)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.DefaultProduceTopic("t"), kgo.RecordRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("produce under a fault: %v, want INVALID_RECORD", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce after the fault: %v", err)
	}
	if c := post("/outage?seconds=1", ""); c != http.StatusNoContent {
		t.Fatalf("POST /outage: %d", c)
	}
	start := time.Now()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce across a 1 s outage: %v", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("produce during a 1 s outage took only %s", d)
	}
}
