package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/redisproc"
)

// Build compiles cmd/healthscore (from the module root dir) into dir and
// returns the binary's path.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "healthscore")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/healthscore")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build healthscore: %w\n%s", err, out)
	}
	return bin, nil
}

// proc is a child process whose exit is awaited once.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	// The kernel kills children if the suite dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to timeout, then kills. It reports
// whether the process exited by itself with status 0.
func (p *proc) term(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		// A Go program prints every goroutine's stack on SIGQUIT: the log
		// then shows where it hung.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			p.kill()
		}
		return fmt.Errorf("did not exit within %s of SIGTERM; sent SIGQUIT for a stack dump", timeout)
	}
}

// Broker is a `healthscore dev-broker` process with its control endpoint.
type Broker struct {
	p       *proc
	Addr    string // Kafka bootstrap address
	Control string // base URL of the fault API
}

var (
	reBrokerAddr = regexp.MustCompile(`dev-broker listening on (\S+)`)
	reControl    = regexp.MustCompile(`dev-broker control on (\S+)`)
)

// StartBroker runs `bin dev-broker` with a control endpoint and waits until
// it prints its addresses.
func StartBroker(bin string, partitions int, sessionTimeout time.Duration, logPath string) (*Broker, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "dev-broker", "--port", "0", "--partitions", strconv.Itoa(partitions),
		"--control", "127.0.0.1:0", "--max-session-timeout", sessionTimeout.String())
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := startProc(cmd)
	if err != nil {
		return nil, fmt.Errorf("cannot start dev-broker: %w", err)
	}
	b := &Broker{p: p}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for b.Addr == "" || b.Control == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				return nil, fmt.Errorf("dev-broker exited before listening (see %s)", logPath)
			}
			if m := reBrokerAddr.FindStringSubmatch(l); m != nil {
				b.Addr = m[1]
			}
			if m := reControl.FindStringSubmatch(l); m != nil {
				b.Control = m[1]
			}
		case <-timeout:
			p.kill()
			return nil, errors.New("dev-broker did not print its addresses in 30 s")
		}
	}
	go func() {
		for range lines {
		}
	}()
	return b, nil
}

// Fault injects a broker fault: the next count requests of api fail with
// the Kafka error kerr.
func (b *Broker) Fault(api, kerr string, count int) error {
	body, _ := json.Marshal(map[string]any{"api": api, "error": kerr, "count": count})
	return b.post("/faults", string(body))
}

// Outage makes every broker request fail for d.
func (b *Broker) Outage(d time.Duration, hang bool) error {
	return b.post(fmt.Sprintf("/outage?seconds=%g&hang=%t", d.Seconds(), hang), "")
}

func (b *Broker) post(path, body string) error {
	resp, err := http.Post(b.Control+path, "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("dev-broker control %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("dev-broker control %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}

// Stop stops the broker.
func (b *Broker) Stop() { _ = b.p.term(10 * time.Second) }

// Redis is a redis-server with an append-only file, in its own directory,
// listening on a unix socket only. It can be killed and restarted from its
// AOF, stalled (SIGSTOP) and resumed.
type Redis struct {
	Dir, Sock string
	Fsync     string // appendfsync: everysec, always or no

	mu   sync.Mutex
	p    *proc
	hist []aofSize // recent sizes of the AOF being appended, for LoseLast
}

type aofSize struct {
	at   time.Time
	file string
	size int64
}

// StartRedis starts redis-server in dir (kept short: the socket path is
// limited to about 100 bytes).
func StartRedis(dir, fsync string) (*Redis, error) {
	r := &Redis{Dir: dir, Sock: filepath.Join(dir, "redis.sock"), Fsync: fsync}
	return r, r.start()
}

// URL is the --redis argument of healthscore run.
func (r *Redis) URL() string { return "unix://" + r.Sock }

// Options are go-redis client options.
func (r *Redis) Options() *redis.Options {
	return &redis.Options{Network: "unix", Addr: r.Sock, MaxRetries: -1}
}

func (r *Redis) start() error {
	cmd, _, err := redisproc.Command(r.Dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", r.Fsync,
		// No rewrites: the incremental AOF only grows, so LoseLast can
		// cut it back to an earlier size.
		"--auto-aof-rewrite-percentage", "0",
		"--aof-load-truncated", "yes",
		"--logfile", filepath.Join(r.Dir, "redis.log"),
	)
	if err != nil {
		return err
	}
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("cannot start redis-server: %w", err)
	}
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
	c := redisproc.Client(r.Sock)
	defer c.Close()
	// LOADING while it replays the AOF: WaitReady waits for that too.
	if err := redisproc.WaitReady(context.Background(), c, 60*time.Second, p.exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
		return fmt.Errorf("redis-server did not answer PING: %v\n%s", err, tail(string(log), 2000))
	}
	return nil
}

// Kill kills redis-server with SIGKILL; with lose > 0 it then cuts the AOF
// back to its size of lose ago, as a power loss would with appendfsync
// everysec (which fsyncs once a second: an OS crash loses what the kernel
// had not written out, a process crash loses nothing that was written).
// It returns the bytes cut.
func (r *Redis) Kill(lose time.Duration) (int64, error) {
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	p.kill()
	if lose <= 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cut := time.Now().Add(-lose)
	var keep *aofSize
	for i := range r.hist {
		if r.hist[i].at.Before(cut) {
			keep = &r.hist[i]
		}
	}
	if keep == nil {
		return 0, nil
	}
	fi, err := os.Stat(keep.file)
	if err != nil {
		return 0, err
	}
	if fi.Size() <= keep.size {
		return 0, nil
	}
	return fi.Size() - keep.size, os.Truncate(keep.file, keep.size)
}

// Restart starts redis-server again; it loads its AOF.
func (r *Redis) Restart() error {
	r.mu.Lock()
	r.hist = nil // a new incremental file may start
	r.mu.Unlock()
	return r.start()
}

// SampleAOF records the current size of the AOF being appended; call it
// often (e.g. every 50 ms) when using Kill with lose > 0.
func (r *Redis) SampleAOF() {
	file := r.currentAOF()
	if file == "" {
		return
	}
	fi, err := os.Stat(file)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hist = append(r.hist, aofSize{time.Now(), file, fi.Size()})
	if len(r.hist) > 200 {
		r.hist = r.hist[len(r.hist)-200:]
	}
}

// Growth returns how many bytes the AOF grew in the last d (as sampled).
func (r *Redis) Growth(d time.Duration) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hist) == 0 {
		return 0
	}
	last := r.hist[len(r.hist)-1]
	cut := last.at.Add(-d)
	for _, h := range r.hist {
		if !h.at.Before(cut) && h.file == last.file {
			return last.size - h.size
		}
	}
	return 0
}

// currentAOF returns the incremental AOF named last in the manifest.
func (r *Redis) currentAOF() string {
	dir := filepath.Join(r.Dir, "appendonlydir")
	m, err := os.ReadFile(filepath.Join(dir, "appendonly.aof.manifest"))
	if err != nil {
		return ""
	}
	var last string
	for _, l := range strings.Split(string(m), "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && f[0] == "file" && f[5] == "i" {
			last = f[1]
		}
	}
	if last == "" {
		return ""
	}
	return filepath.Join(dir, last)
}

// Stall stops redis-server with SIGSTOP: connections stay open and nothing
// answers. Resume undoes it.
func (r *Redis) Stall() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume continues a stalled redis-server.
func (r *Redis) Resume() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p.cmd.Process.Signal(syscall.SIGCONT)
}

// Stop stops redis-server.
func (r *Redis) Stop() {
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.term(10 * time.Second)
}

// Instance is one `healthscore run` process (restartable).
type Instance struct {
	Name string
	bin  string
	args []string
	log  string

	mu      sync.Mutex
	p       *proc
	http    string
	starts  int
	logFrom int64              // size of the log when this incarnation started
	metrics map[string]float64 // last scrape of this incarnation
	totals  map[string]float64 // sum of the last scrapes of earlier incarnations
}

// NewInstance prepares an instance; Start runs it.
func NewInstance(name, bin, logPath string, args ...string) *Instance {
	return &Instance{Name: name, bin: bin, args: args, log: logPath, totals: map[string]float64{}}
}

// Start runs the process and waits for its HTTP listener.
func (in *Instance) Start() error {
	logf, err := os.OpenFile(in.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if fi, err := logf.Stat(); err == nil {
		in.mu.Lock()
		in.logFrom = fi.Size()
		in.mu.Unlock()
	}
	cmd := exec.Command(in.bin, append([]string{"run", "--http", "127.0.0.1:0"}, in.args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return err
	}
	p, err := startProc(cmd)
	if err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s: %w", in.Name, err)
	}
	addr := make(chan string, 1)
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logf.Write(append(line, '\n'))
			if len(addr) == 0 && strings.Contains(string(line), `"HTTP listening"`) {
				var l struct {
					Addr string `json:"addr"`
				}
				if json.Unmarshal(line, &l) == nil {
					addr <- l.Addr
				}
			}
		}
	}()
	in.mu.Lock()
	in.p, in.http, in.metrics = p, "", nil
	in.starts++
	in.mu.Unlock()
	select {
	case a := <-addr:
		in.mu.Lock()
		in.http = "http://" + a
		in.mu.Unlock()
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited before listening: %v (see %s)", in.Name, p.err, in.log)
	case <-time.After(60 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not listen within 60 s (see %s)", in.Name, in.log)
	}
}

// Running reports whether the current incarnation is alive.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.p != nil && !in.p.exited()
}

// URL is the base URL of its HTTP API ("" before it listens).
func (in *Instance) URL() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.http
}

// Kill kills it with SIGKILL.
func (in *Instance) Kill() {
	in.mu.Lock()
	p := in.p
	in.mu.Unlock()
	if p != nil {
		p.kill()
	}
	in.retire()
}

// Term stops it with SIGTERM and reports an unclean exit.
func (in *Instance) Term(timeout time.Duration) error {
	in.mu.Lock()
	p := in.p
	in.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	in.Scrape() // the last counts before it goes
	err := p.term(timeout)
	in.finalCounts() // the batch it finished while stopping counts too
	in.retire()
	if err != nil {
		return fmt.Errorf("%s: %w (see %s)", in.Name, err, in.log)
	}
	return nil
}

// finalCounts replaces the event counters of this incarnation by the ones it
// logged when it stopped gracefully ("consumer stopping" with events_*
// fields), which include the batch it finished after the last scrape.
func (in *Instance) finalCounts() {
	in.mu.Lock()
	from := in.logFrom
	in.mu.Unlock()
	f, err := os.Open(in.log)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return
	}
	var last map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == "consumer stopping: shutdown requested" {
			last = l
		}
	}
	if last == nil {
		return // not a graceful stop: the last scrape is all there is
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.metrics == nil {
		in.metrics = map[string]float64{}
	}
	for _, r := range []string{"applied", "duplicate", "ignored", "dead_lettered"} {
		if v, ok := last["events_"+r].(float64); ok {
			in.metrics[`healthscore_events_total{result="`+r+`"}`] = v
		}
	}
}

// retire adds the incarnation's last scraped counters to the totals.
func (in *Instance) retire() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, v := range in.metrics {
		in.totals[k] += v
	}
	in.metrics = nil
}

// Starts counts the incarnations started.
func (in *Instance) Starts() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.starts
}

// Scrape reads the counters of /metrics (healthscore_* only).
func (in *Instance) Scrape() {
	u := in.URL()
	if u == "" {
		return
	}
	m, err := scrape(u + "/metrics")
	if err != nil {
		return
	}
	in.mu.Lock()
	in.metrics = m
	in.mu.Unlock()
}

// Counter is the sum over incarnations of a scraped series, e.g.
// `healthscore_events_total{result="duplicate"}`. Killed incarnations count
// up to their last scrape, so this is a lower bound.
func (in *Instance) Counter(series string) float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.totals[series] + in.metrics[series]
}

// 15 s: with Redis stalled, /readyz and /metrics take about 5 s (go-redis does not
// apply context deadlines to socket reads unless ContextTimeoutEnabled).
var httpClient = &http.Client{Timeout: 15 * time.Second}

func scrape(url string) (map[string]float64, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "healthscore_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out, sc.Err()
}

// Ready GETs /readyz and returns its status code (0 if unreachable).
func (in *Instance) Ready() int {
	u := in.URL()
	if u == "" {
		return 0
	}
	resp, err := httpClient.Get(u + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
