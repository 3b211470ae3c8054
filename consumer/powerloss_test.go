package consumer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/redisproc"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// The tests in this file simulate a power loss of the Redis machine under
// appendfsync everysec: redis-server is SIGKILLed and its append-only file
// cut back to an earlier size, so that it comes back (with a new run_id)
// without the writes of the last batch, whose offsets are not committed yet
// (the commit delay). They run their own redis-server with appendfsync
// always, so that the file's size at any instant holds exactly the writes
// acknowledged until then, and cut it back to the size it had after the
// first batch: what a power loss does to the writes that everysec had not
// synced yet.

// powerRedis is a redis-server with an append-only file in its own dir.
type powerRedis struct {
	t         testing.TB
	dir, sock string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startPowerRedis(t testing.TB) *powerRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatal(err)
		}
		t.Skip("redis-server not in PATH")
	}
	dir, err := os.MkdirTemp("/tmp", "hspl") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	r := &powerRedis{t: t, dir: dir}
	r.start()
	t.Cleanup(func() {
		r.kill()
		_ = os.RemoveAll(dir)
	})
	return r
}

func (r *powerRedis) start() {
	r.t.Helper()
	cmd, sock, err := redisproc.Command(r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--auto-aof-rewrite-percentage", "0", "--aof-load-truncated", "yes",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited, r.sock = cmd, exited, sock
	c := redisproc.Client(sock)
	defer c.Close()
	isExited := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}
	if err := redisproc.WaitReady(context.Background(), c, 20*time.Second, isExited); err != nil {
		log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
		r.t.Fatalf("redis-server: %v\n%s", err, log)
	}
}

func (r *powerRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	r.cmd = nil
}

// aof returns the incremental append-only file being written and its size.
func (r *powerRedis) aof() (string, int64) {
	r.t.Helper()
	dir := filepath.Join(r.dir, "appendonlydir")
	m, err := os.ReadFile(filepath.Join(dir, "appendonly.aof.manifest"))
	if err != nil {
		r.t.Fatal(err)
	}
	var file string
	for _, l := range strings.Split(string(m), "\n") {
		if f := strings.Fields(l); len(f) >= 6 && f[0] == "file" && f[5] == "i" {
			file = filepath.Join(dir, f[1])
		}
	}
	fi, err := os.Stat(file)
	if err != nil {
		r.t.Fatal(err)
	}
	return file, fi.Size()
}

// powerLoss kills redis-server and cuts its append-only file back to size
// (as taken by aof); it does not restart it.
func (r *powerRedis) powerLoss(file string, size int64) {
	r.t.Helper()
	r.kill()
	if err := os.Truncate(file, size); err != nil {
		r.t.Fatal(err)
	}
}

// crashingStore is the Redis store whose sessions run hooks once before a
// load and before a save.
type crashingStore struct {
	*state.Redis
	beforeLoad atomic.Pointer[func()]
	beforeSave atomic.Pointer[func()]
}

func (s *crashingStore) Bind(ctx context.Context) (state.Bound, error) {
	b, err := s.Redis.Bind(ctx)
	if err != nil {
		return nil, err
	}
	return &crashingSession{Bound: b, s: s}, nil
}

type crashingSession struct {
	state.Bound
	s *crashingStore
}

func (b *crashingSession) Save(ctx context.Context, ws []state.Write) (state.Saved, error) {
	if f := b.s.beforeSave.Swap(nil); f != nil {
		(*f)()
	}
	return b.Bound.Save(ctx, ws)
}

func (b *crashingSession) Load(ctx context.Context, ids []string) ([]state.Record, error) {
	if f := b.s.beforeLoad.Swap(nil); f != nil {
		(*f)()
	}
	return b.Bound.Load(ctx, ids)
}

type powerLossEnv struct {
	*harness
	redis *powerRedis
	store *crashingStore
	group string
	next  int       // next event number
	c     *Consumer // the consumer start runs
}

func newPowerLossEnv(t *testing.T) *powerLossEnv {
	t.Helper()
	r := startPowerRedis(t)
	// The options of `healthscore run --redis unix://…`: go-redis's default
	// retries and dial retries, which reconnect transparently to a restarted
	// server.
	opt, err := redis.ParseURL("unix://" + r.sock)
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	// The record cache on, as `healthscore run` has it: its entries
	// must not outlive the server they were saved on.
	st, err := state.NewRedis(rdb, state.Config{Cache: 10000})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, brokers: testenv.Kafka(t, testTopics), store: st, rdb: rdb, model: scorer.DefaultModel(), enc: enc}
	return &powerLossEnv{harness: h, redis: r, store: &crashingStore{Redis: st}, group: "powerloss"}
}

// start runs a consumer until the test ends.
func (e *powerLossEnv) start(commitDelay time.Duration) {
	e.t.Helper()
	c, err := New(Config{Brokers: e.brokers, Group: e.group, Model: e.model, Store: e.store, Encoder: e.enc,
		Logger: zaptest.NewLogger(e.t), Registerer: prometheus.NewRegistry(), CommitDelay: commitDelay})
	if err != nil {
		e.t.Fatal(err)
	}
	e.c = c
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	e.t.(*testing.T).Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
}

// send produces n login events of customer "pl" to partition 0.
func (e *powerLossEnv) send(n int) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("customer-events"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for range n {
		at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(e.next) * time.Hour)
		recs = append(recs, &kgo.Record{Partition: 0, Value: fmt.Appendf(nil,
			`{"id":"e%d","customer_id":"pl","type":"login","time":%q}`, e.next, at.Format(time.RFC3339))})
		e.next++
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// waitState waits until the customer's state has applied partition 0 up to
// offset last and its outputs are acknowledged: the batch is done but for
// its commit. It reads through a session of the consumer's store, which
// sees an acknowledged outbox as cleared at once; Redis deletes it only
// with the next save or just before the commit (state.Bound.Acknowledge),
// so waiting for that would wait for the commit too.
func (e *powerLossEnv) waitState(last int64) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, fmt.Sprintf("offset %d applied", last), func() bool {
		sess, err := e.harness.store.Bind(context.Background())
		if err != nil {
			return false
		}
		recs, err := sess.Load(context.Background(), []string{"pl"})
		return err == nil && recs[0].Offsets[state.Partition{Topic: "customer-events", Partition: 0}] == last && len(recs[0].Pending) == 0
	})
}

// committed returns the group's committed offset of partition 0 (-1: none).
func (e *powerLossEnv) committed() int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	if o, ok := offs.Lookup("customer-events", 0); ok {
		return o.At
	}
	return -1
}

// events returns the number of events in the customer's state.
func (e *powerLossEnv) events() int {
	e.t.Helper()
	var rec state.Record
	var err error
	waitFor(e.t, 5*time.Second, "the state read (the client may still be reconnecting)", func() bool {
		rec, err = e.harness.store.Get(context.Background(), "pl")
		return err == nil
	})
	st, err := e.model.DecodeState(rec.Data)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(st.Events)
}

// committedThenPending sends offsets 0-4 and waits until they are applied
// and committed, takes the AOF's size then (everything before is synced),
// and sends offsets 5-9 and waits until they are applied: written, their
// commit waiting for the delay. A power loss cut back to the returned size
// loses exactly the writes of 5-9.
func (e *powerLossEnv) committedThenPending() (file string, size int64) {
	e.t.Helper()
	e.send(5) // offsets 0-4
	e.waitState(4)
	e.waitCommitted(e.group)
	file, size = e.redis.aof()
	e.send(5) // offsets 5-9
	e.waitState(9)
	return file, size
}

// TestPowerLossBetweenServerCheckAndLoad: Redis loses the last batch's
// writes (power loss) and restarts right after an attempt of the next batch
// checked the run_id and before its Load is served. go-redis reconnects and
// retries transparently, so the Load is answered by the restarted server:
// the next batch must not be applied on top of those regressed states. It
// was (the check was made only before the Load): the new batch's write moved
// the customer's applied offset past the lost batch's records, and when the
// consumer then noticed the restart and rewound, those records were skipped
// as already applied: lost for good (found by the power-loss runs of the
// fault suite: 15 of 59,220 events in one run of five).
func TestPowerLossBetweenServerCheckAndLoad(t *testing.T) {
	e := newPowerLossEnv(t)
	e.start(2 * time.Second)

	file, size := e.committedThenPending() // offsets 0-4 durable, 5-9 written and not committed
	crash := func() {
		e.redis.powerLoss(file, size) // loses the writes of offsets 5-9
		e.redis.start()
		t.Log("redis-server lost the batch of offsets 5-9 and restarted")
	}
	e.store.beforeLoad.Store(&crash)
	e.send(5) // offsets 10-14: the crash comes between the run_id check and the Load

	e.waitCommitted(e.group)
	if e.store.beforeLoad.Load() != nil {
		t.Fatal("the crash was not simulated: no Load after the third batch")
	}
	if got := e.events(); got != 15 {
		t.Errorf("state holds %d events, 15 were sent: the records of a batch whose writes Redis lost were skipped as applied", got)
	}
}

// TestNoCommitWhileRedisRunIDUnknown: Redis loses the last batch's writes
// in a power loss and stays down longer than the commit delay. The consumer,
// idle, must not commit that batch's offsets while it cannot tell whether
// Redis restarted (its run_id cannot be read); it did, and the batch was
// lost once Redis came back without it.
func TestNoCommitWhileRedisRunIDUnknown(t *testing.T) {
	e := newPowerLossEnv(t)
	e.start(time.Second)

	file, size := e.committedThenPending() // offsets 0-4 durable, 5-9 written and not committed
	e.redis.powerLoss(file, size)
	// The commit came due and was refused: the consumer reports that it
	// cannot read the run_id (after go-redis's retries of INFO).
	waitFor(t, 20*time.Second, "the due commit refused while Redis is down", func() bool {
		err := e.c.Ready()
		return err != nil && strings.HasPrefix(err.Error(), "commit: ")
	})
	if got := e.committed(); got != 5 {
		t.Errorf("committed offset %d while Redis was down; want 5 (the offsets of the lost batch must wait)", got)
	}
	e.redis.start()

	e.waitCommitted(e.group)
	if got := e.events(); got != 10 {
		t.Errorf("state holds %d events, 10 were sent", got)
	}
}

// TestPowerLossBeforeSaveWithReusedVersion: the attempt loads and checks
// the run_id on the old server; then Redis loses the last batch's writes and
// restarts, and another writer (say, an instance owning another partition)
// writes the customer twice on the restarted server, re-using the version
// numbers of the lost writes. The attempt's save reaches the restarted
// server with a version that matches: a plain compare-and-set would
// overwrite the other writer's event. The save is bound to the run_id the
// attempt checked, so it is refused, the consumer rewinds, and every event
// ends in the state.
func TestPowerLossBeforeSaveWithReusedVersion(t *testing.T) {
	e := newPowerLossEnv(t)
	e.start(2 * time.Second)

	file, size := e.committedThenPending() // offsets 0-4 durable, 5-9 written and not committed
	lost, err := e.harness.store.Get(context.Background(), "pl")
	if err != nil {
		t.Fatal(err)
	}
	crash := func() {
		e.redis.powerLoss(file, size) // loses the writes of offsets 5-9
		e.redis.start()
		// The other writer: one event of partition 1, saved twice, so the
		// record is back at the lost version number with other contents.
		if !eventually(10*time.Second, func() bool { // the client reconnects
			_, err := e.harness.store.Get(context.Background(), "pl")
			return err == nil
		}) {
			t.Error("the restarted Redis did not answer within 10 s")
			return
		}
		for i := 0; ; i++ {
			rec, err := e.harness.store.Get(context.Background(), "pl")
			if err != nil {
				t.Error(err)
				return
			}
			if rec.Version >= lost.Version {
				break
			}
			st, err := e.model.DecodeState(rec.Data)
			if err != nil {
				t.Error(err)
				return
			}
			if i == 0 {
				ev, err := scorer.DecodeEvent([]byte(`{"id":"other","customer_id":"pl","type":"login","time":"2026-11-01T12:30:00Z"}`))
				if err != nil {
					t.Error(err)
					return
				}
				e.model.Apply(st, &ev)
				rec.Offsets[state.Partition{Topic: "customer-events", Partition: 1}] = 0
			}
			rec.Data = e.model.AppendState(nil, st)
			other, err := e.harness.store.Bind(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if ok, err := other.Save(context.Background(), []state.Write{{ID: "pl", Expected: rec.Version, Rec: rec}}); err != nil || !ok.Applied[0] {
				t.Errorf("other writer: %v %v", ok, err)
				return
			}
		}
		t.Logf("redis-server lost offsets 5-9 and restarted; another writer re-used version %d", lost.Version)
	}
	e.store.beforeSave.Store(&crash)
	e.send(5) // offsets 10-14: the crash comes between the attempt's load and its save

	e.waitCommitted(e.group)
	if e.store.beforeSave.Load() != nil {
		t.Fatal("the crash was not simulated: no save after the third batch")
	}
	if got := e.events(); got != 16 {
		t.Errorf("state holds %d events, want 16 (15 sent here and the other writer's one)", got)
	}
}

// TestSweeperAfterRedisRestart: Redis restarts (from an append-only file
// that kept every write) while the consumer is idle and nothing waits to be
// committed. No batch comes to find the session stale, so the sweeper's
// refusal must make the loop rewind and open a new session; before, every
// later sweep round was refused and a silent customer's decay was never
// published again until some event arrived.
func TestSweeperAfterRedisRestart(t *testing.T) {
	e := newPowerLossEnv(t)
	h := e.harness
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	recs, _ := weekOfLogins(base)
	clock := &fakeClock{}
	clock.Set(base.Add(6 * 24 * time.Hour))
	h.produce(recs...)
	h.startSweeping("restart", clock)
	h.waitCommitted("restart")
	version := func() uint64 {
		rec, err := h.store.Get(context.Background(), "silent")
		if err != nil {
			return 0 // Redis restarting
		}
		return rec.Version
	}
	v0 := version()
	if h.due("silent") == 0 || v0 == 0 {
		t.Fatalf("the customer is not stored (version %d) or not scheduled", v0)
	}

	e.redis.kill()
	e.redis.start() // a new run_id; the file kept everything

	// Time passes: the clock follows the customer's due time (its next
	// decay evaluation, or a refused round's claim expiry) until an
	// evaluation is saved.
	waitFor(t, 30*time.Second, "a decay evaluation saved after the restart", func() bool {
		if d := h.due("silent"); d > clock.Now().UnixMilli() {
			clock.SetMs(d)
		}
		return version() > v0
	})
}
