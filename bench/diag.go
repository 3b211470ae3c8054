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

// memorySample reports where the Redis memory of the state goes, part by
// part of the layout (docs/architecture.md): the records, the band index and
// the schedule. For each part it counts the keys (SCAN), samples up to n of
// them for MEMORY USAGE (every element: SAMPLES 0) and their entries (a
// string is one, a hash or sorted set its fields or members), and reports
// bytes per customer (mean usage times keys over the customers) and per
// entry. The score history's share comes from historySample, for customers
// found in the sampled records.
func (r *run) memorySample(ctx context.Context, customerCount, n int) (string, error) {
	customers := float64(customerCount)
	if customers == 0 {
		return "", fmt.Errorf("no customers to divide by")
	}
	var parts []string
	var ids []string
	for _, p := range []struct{ name, match string }{
		{"records", r.prefix + "c:*"},
		{"band index", r.prefix + "band:*"},
		{"schedule", r.prefix + "due:*"},
	} {
		ps, err := r.samplePart(ctx, p.match, n)
		if err != nil {
			return "", err
		}
		if ps.keys == 0 {
			continue
		}
		per := ps.usage / float64(ps.sampled) * float64(ps.keys) / customers
		line := fmt.Sprintf("%s %.0f B per customer (%d keys, %.1f entries and %.0f B each on average, %.0f B per entry",
			p.name, per, ps.keys, ps.entries/float64(ps.sampled), ps.usage/float64(ps.sampled), ps.usage/max(ps.entries, 1))
		if p.name == "records" {
			line += fmt.Sprintf("; record value %.0f B", ps.valueBytes/max(ps.entries, 1))
			ids = ps.fields
		}
		parts = append(parts, line+")")
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("no state keys under %q", r.prefix)
	}
	hs, perCustomer := r.historySample(ctx, ids)
	r.res.HistoryBytesPerCustomer = perCustomer
	return strings.Join(parts, "; ") + "; " + hs, nil
}

// partSample is what samplePart found for one part of the layout.
type partSample struct {
	keys, sampled  int
	usage, entries float64  // summed over the sampled keys
	valueBytes     float64  // summed value lengths of their entries (strings and hashes)
	fields         []string // hash fields (customer ids) or string keys' ids, for the history sample
}

// samplePart counts the keys matching match and samples up to n of them.
func (r *run) samplePart(ctx context.Context, match string, n int) (partSample, error) {
	rdb := r.env.rdb
	var ps partSample
	var sample []string
	iter := rdb.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		ps.keys++
		if len(sample) < n {
			sample = append(sample, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return ps, fmt.Errorf("cannot scan %s: %w", match, err)
	}
	for _, k := range sample {
		u, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return ps, fmt.Errorf("cannot read MEMORY USAGE of %s: %w", k, err)
		}
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			return ps, fmt.Errorf("cannot read TYPE of %s: %w", k, err)
		}
		ps.sampled++
		ps.usage += float64(u)
		switch typ {
		case "string":
			l, _ := rdb.StrLen(ctx, k).Result()
			ps.entries++
			ps.valueBytes += float64(l)
			if id, ok := strings.CutPrefix(k, r.prefix+"c:{"); ok {
				ps.fields = append(ps.fields, strings.TrimSuffix(id, "}"))
			}
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			ps.entries += float64(len(m))
			for f, v := range m {
				ps.valueBytes += float64(len(v))
				ps.fields = append(ps.fields, f)
			}
		case "zset":
			c, _ := rdb.ZCard(ctx, k).Result()
			ps.entries += float64(c)
		}
	}
	return ps, nil
}

// historySample reports the score history's share (--history-days): the
// mean MEMORY USAGE and STRLEN per sampled customer of its history key
// (daily points and last changes, under the record key's hash tag).
// Included in the used_memory growth per customer; perCustomer is that
// mean, for the figure without the history.
func (r *run) historySample(ctx context.Context, ids []string) (_ string, perCustomer float64) {
	rdb := r.env.rdb
	var usage, strlen float64
	var with int
	if len(ids) > 1000 {
		ids = ids[:1000]
	}
	for _, id := range ids {
		hk := r.prefix + "h:{" + id + "}"
		if u, err := rdb.MemoryUsage(ctx, hk, 0).Result(); err == nil {
			l, _ := rdb.StrLen(ctx, hk).Result()
			usage, strlen, with = usage+float64(u), strlen+float64(l), with+1
		}
	}
	m := float64(max(len(ids), 1))
	return fmt.Sprintf("score history: MEMORY USAGE %.0f B per customer (value %.0f B: daily points and last changes; %d of %d sampled customers have one)",
		usage/m, strlen/m, with, len(ids)), usage / m
}
