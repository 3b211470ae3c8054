package devbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FaultSpec asks the broker to answer the next Count requests of one kind
// (API, e.g. "produce", "fetch", "offset_commit", "join_group"; Kafka's
// names in any case, with or without underscores) with a Kafka error (Error,
// e.g. "NOT_LEADER_FOR_PARTITION"; default UNKNOWN_SERVER_ERROR). Count -1
// means until the broker stops; 0 means 1.
//
// Faults are kfake's: a faulted partition or request is rejected before the
// broker acts on it, except for errors a real broker can return after acting
// (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND on produce), which are
// answered after the work is done.
type FaultSpec struct {
	API   string `json:"api"`
	Error string `json:"error"`
	Count int    `json:"count"`
}

// APIKey returns the request key of a Kafka API name such as "produce",
// "offset_commit" or "OffsetCommit".
func APIKey(name string) (kmsg.Key, error) {
	want := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(name, "_", ""), "-", ""))
	for k := range int16(100) {
		if n := kmsg.NameForKey(k); n != "Unknown" && strings.ToLower(n) == want {
			return kmsg.Key(k), nil
		}
	}
	return 0, fmt.Errorf("unknown Kafka API %q (e.g. produce, fetch, offset_commit, join_group, heartbeat, metadata)", name)
}

// KafkaError returns the Kafka error named like "NOT_LEADER_FOR_PARTITION".
func KafkaError(name string) (*kerr.Error, error) {
	if name == "" {
		return kerr.UnknownServerError, nil
	}
	for code := int16(-1); code < 200; code++ {
		if e := kerr.TypedErrorForCode(code); e != nil && strings.EqualFold(e.Message, name) {
			return e, nil
		}
	}
	return nil, fmt.Errorf("unknown Kafka error %q (e.g. NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, COORDINATOR_NOT_AVAILABLE)", name)
}

// Fault installs a fault (see FaultSpec) and returns its handle.
func (b *Broker) Fault(f FaultSpec) (*kfake.FaultHandle, error) {
	key, err := APIKey(f.API)
	if err != nil {
		return nil, err
	}
	kerrv, err := KafkaError(f.Error)
	if err != nil {
		return nil, err
	}
	if f.Count < -1 {
		return nil, fmt.Errorf("count %d: want -1 (forever) or at least 0", f.Count)
	}
	return b.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{key}, Err: kerrv, Count: f.Count}), nil
}

// outage is a window during which every request fails or hangs.
type outage struct {
	until time.Time
	hang  bool
}

// Outage makes every request fail for d from now: the broker closes the
// connection without answering, as a crashed or partitioned broker would.
// Only the version handshake of new connections (ApiVersions) still works.
// With hang, each request is first held until the outage ends (the clients'
// request timeouts decide what happens meanwhile), then its connection is
// closed. A later call replaces the window; d <= 0 ends it.
func (b *Broker) Outage(d time.Duration, hang bool) {
	b.outageMu.Lock()
	b.outage = outage{until: time.Now().Add(d), hang: hang}
	b.outageMu.Unlock()
	b.outageOnce.Do(func() {
		// One control function for every request key, installed for good:
		// returning false (not handled) keeps it and lets the request
		// through.
		b.Cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
			if req.Key() == int16(kmsg.ApiVersions) {
				// franz-go takes a connection closed during its version
				// handshake for a TLS mismatch and fails records for good;
				// a broken broker drops requests, not handshakes.
				return nil, nil, false
			}
			b.outageMu.Lock()
			o := b.outage
			b.outageMu.Unlock()
			wait := time.Until(o.until)
			if wait <= 0 {
				return nil, nil, false
			}
			b.Cluster.KeepControl()
			if o.hang {
				b.Cluster.SleepControl(func() { time.Sleep(wait) })
			}
			// Handled with an error: the connection is closed unanswered.
			return nil, errOutage, true
		})
	})
}

var errOutage = errors.New("dev-broker: simulated outage")

// ControlHandler serves the fault-injection API of `healthscore dev-broker
// --control`:
//
//	POST /faults                 {"api":"produce","error":"NOT_LEADER_FOR_PARTITION","count":3}
//	POST /outage?seconds=10      every request fails for 10 s (&hang=1: hangs instead)
//
// Both answer 204 No Content, or 400 with a plain-text reason.
func (b *Broker) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f FaultSpec
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err == nil {
			_, err = b.Fault(f)
		}
		if err != nil {
			http.Error(w, "cannot install fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) {
		secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err != nil || secs < 0 || secs > 3600 {
			http.Error(w, "seconds must be a number from 0 to 3600", http.StatusBadRequest)
			return
		}
		hang, _ := strconv.ParseBool(r.URL.Query().Get("hang"))
		b.Outage(time.Duration(secs*float64(time.Second)), hang)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
