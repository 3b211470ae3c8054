package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/redisproc"
)

// proc is a child process with its output kept in a log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string // path of its combined output
}

// startProc starts cmd with its stderr (and stdout unless piped by the
// caller) appended to logPath.
func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create log of %s: %w", name, err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	if cmd.Stderr == nil {
		cmd.Stderr = f
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM and waits up to timeout before killing.
func (p *proc) stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s ignored SIGTERM for %s; killed", p.name, timeout)
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// env is the broker and Redis a run uses.
type env struct {
	dir      string // temp dir: sockets and logs
	brokers  []string
	redisURL string
	external bool // Redis is external: share it politely (prefixes, no FLUSHALL)
	procs    []*proc
	rdb      *redis.Client
}

func startEnv(ctx context.Context, cfg *Config) (_ *env, err error) {
	// Unix socket paths are limited to ~100 bytes: keep the dir short.
	dir, err := os.MkdirTemp("/tmp", "hsbench")
	if err != nil {
		return nil, fmt.Errorf("cannot create temp dir: %w", err)
	}
	e := &env{dir: dir}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if len(cfg.Brokers) > 0 {
		e.brokers = cfg.Brokers
	} else if e.brokers, err = e.startBroker(ctx, cfg); err != nil {
		return nil, err
	}
	if cfg.RedisURL != "" {
		e.redisURL, e.external = cfg.RedisURL, true
	} else if e.redisURL, err = e.startRedis(); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(e.redisURL)
	if err != nil {
		return nil, fmt.Errorf("cannot parse Redis URL %q: %w", e.redisURL, err)
	}
	e.rdb = redis.NewClient(opt)
	if err := redisproc.WaitReady(ctx, e.rdb, 10*time.Second, nil); err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", e.redisURL, err)
	}
	return e, nil
}

// startBroker runs `healthscore dev-broker` on a free port and reads its
// address from the first line it prints.
func (e *env) startBroker(ctx context.Context, cfg *Config) ([]string, error) {
	cmd := exec.Command(cfg.Binary, "dev-broker", "--port", "0", "--partitions", fmt.Sprint(cfg.Partitions))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start the broker: %w", err)
	}
	p, err := startProc("dev-broker", cmd, filepath.Join(e.dir, "broker.log"))
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// "dev-broker listening on 127.0.0.1:PORT with topics …"
			if f := strings.Fields(sc.Text()); len(f) > 3 && f[1] == "listening" {
				addr <- f[3]
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case a := <-addr:
		return []string{a}, nil
	case <-p.exited:
		return nil, fmt.Errorf("dev-broker exited before listening:\n%s", p.tail())
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("dev-broker did not start listening in 30 s:\n%s", p.tail())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startRedis runs redis-server without persistence on a unix socket.
func (e *env) startRedis() (string, error) {
	cmd, sock, err := redisproc.Command(e.dir, "--save", "", "--appendonly", "no")
	if err != nil {
		return "", fmt.Errorf("%w (or set %s)", err, EnvRedis)
	}
	p, err := startProc("redis-server", cmd, filepath.Join(e.dir, "redis.log"))
	if err != nil {
		return "", err
	}
	e.procs = append(e.procs, p)
	return "unix://" + sock, nil
}

// close stops what startEnv started, in reverse order, and removes the dir.
func (e *env) close() error {
	var errs []error
	if e.rdb != nil {
		e.rdb.Close()
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		if err := e.procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// usedMemory returns Redis's used_memory in bytes.
func (e *env) usedMemory(ctx context.Context) (int64, error) {
	info, err := e.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("cannot read Redis INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err != nil {
				return 0, fmt.Errorf("cannot parse used_memory %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("no used_memory in Redis INFO memory")
}
