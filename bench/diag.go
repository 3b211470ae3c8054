package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// cpuTime returns the user+system CPU time of pid from /proc (0 if unknown).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// cpuSnapshot is the CPU time of each process the run started.
type cpuSnapshot map[string]time.Duration

func (r *run) cpuSnapshot(insts []*instance) cpuSnapshot {
	s := cpuSnapshot{"harness": cpuTime(os.Getpid())}
	for _, p := range r.env.procs {
		s[p.name] = cpuTime(p.cmd.Process.Pid)
	}
	for _, in := range insts {
		s["pipeline"] += cpuTime(in.cmd.Process.Pid)
	}
	return s
}

// perEvent returns microseconds of CPU per event of each process between
// two snapshots, as "name X µs" sorted by name.
func perEvent(before, after cpuSnapshot, events int64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for name, t := range after {
		out[name] = float64(t-before[name]) / float64(time.Microsecond) / float64(events)
	}
	return out
}

func formatPerEvent(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// commandStats returns Redis's INFO commandstats as "cmd: calls, usec/call",
// busiest first.
func (r *run) commandStats(ctx context.Context) ([]string, error) {
	info, err := r.env.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("cannot read Redis INFO commandstats: %w", err)
	}
	return formatCommandStats(parseCommandStats(info, nil)), nil
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct {
	calls, usec float64
}

// parseCommandStats adds the commands of an INFO commandstats reply to
// into (a new map when nil) and returns it.
func parseCommandStats(info string, into map[string]cmdStat) map[string]cmdStat {
	if into == nil {
		into = map[string]cmdStat{}
	}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		s := into[name]
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				s.calls += f
			case "usec":
				s.usec += f
			}
		}
		into[name] = s
	}
	return into
}

// formatCommandStats lists the commands busiest first.
func formatCommandStats(m map[string]cmdStat) []string {
	names := make([]string, 0, len(m))
	for n, s := range m {
		if s.calls > 0 {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return m[names[i]].usec > m[names[j]].usec })
	out := make([]string, len(names))
	for i, n := range names {
		s := m[n]
		out[i] = fmt.Sprintf("%s %.0f calls, %.2f µs/call, %.2f s", n, s.calls, s.usec/s.calls, s.usec/1e6)
	}
	return out
}

// memorySample returns the mean MEMORY USAGE and STRLEN of up to n customer
// keys, and the MEMORY USAGE of the band index.
func (r *run) memorySample(ctx context.Context, n int) (string, error) {
	rdb := r.env.rdb
	var keys []string
	iter := rdb.Scan(ctx, 0, r.prefix+"c:*", 200).Iterator()
	for iter.Next(ctx) && len(keys) < n {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return "", fmt.Errorf("cannot scan keys: %w", err)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("no keys under %q", r.prefix+"c:")
	}
	var usage, strlen, keylen float64
	for _, k := range keys {
		u, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return "", fmt.Errorf("cannot read MEMORY USAGE: %w", err)
		}
		l, err := rdb.StrLen(ctx, k).Result()
		if err != nil {
			return "", fmt.Errorf("cannot read STRLEN: %w", err)
		}
		usage += float64(u)
		strlen += float64(l)
		keylen += float64(len(k))
	}
	m := float64(len(keys))
	var index int64
	var members int64
	for _, band := range []string{"red", "yellow", "green"} {
		k := r.prefix + "band:" + band
		u, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			continue // a missing band
		}
		index += u
		c, _ := rdb.ZCard(ctx, k).Result()
		members += c
	}
	s := fmt.Sprintf("customer record: MEMORY USAGE %.0f B (key %.0f B, value %.0f B; sample of %d)", usage/m, keylen/m, strlen/m, len(keys))
	if members > 0 {
		s += fmt.Sprintf("; band index: %.0f B per member (%d members)", float64(index)/float64(members), members)
	}
	hs, perCustomer := r.historySample(ctx, keys)
	r.res.HistoryBytesPerCustomer = perCustomer
	return s + "; " + hs, nil
}

// historySample reports the score history's share (--history-days): the
// mean MEMORY USAGE and STRLEN per sampled customer of its history key
// (daily points and last changes, under the record key's hash tag).
// Included in the used_memory growth per customer; perCustomer is that
// mean, for the figure without the history.
func (r *run) historySample(ctx context.Context, recordKeys []string) (_ string, perCustomer float64) {
	rdb := r.env.rdb
	var usage, strlen float64
	var with int
	for _, k := range recordKeys {
		hk := r.prefix + "h:" + strings.TrimPrefix(k, r.prefix+"c:")
		if u, err := rdb.MemoryUsage(ctx, hk, 0).Result(); err == nil {
			l, _ := rdb.StrLen(ctx, hk).Result()
			usage, strlen, with = usage+float64(u), strlen+float64(l), with+1
		}
	}
	m := float64(len(recordKeys))
	return fmt.Sprintf("score history: MEMORY USAGE %.0f B per customer (value %.0f B: daily points and last changes; %d of %d customers have one)",
		usage/m, strlen/m, with, len(recordKeys)), usage / m
}
