package deployments

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

const composeFile = "compose/compose.yaml"

// loadCompose loads the compose file with compose-go, the Compose
// specification's reference loader (what `docker compose` uses): schema
// validation, interpolation, merging of the x-healthscore anchor,
// consistency of depends_on, volumes and networks.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory("compose"), cli.WithEnv(nil), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatalf("compose: %v", err)
		}
		return s
	}
	// Every image is pinned to an exact version (or built here).
	for _, s := range p.Services {
		if s.Build != nil {
			continue
		}
		if s.Image != "healthscore:dev" && !regexp.MustCompile(`:v?\d+\.\d+\.\d+$|@sha256:`).MatchString(s.Image) {
			t.Errorf("%s: image %q: pin an exact version", s.Name, s.Image)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s published on %q: keep the stack on loopback", s.Name, port.Published, port.HostIP)
			}
		}
		// Bind mounts name files of this repository.
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount %s: %v", s.Name, v.Source, err)
				}
			}
		}
	}

	kafka := svc("kafka")
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") || !strings.Contains(envOf(kafka, "KAFKA_PROCESS_ROLES"), "controller") {
		t.Errorf("kafka: want the official apache/kafka image in KRaft mode (broker,controller), got %s %q", kafka.Image, envOf(kafka, "KAFKA_PROCESS_ROLES"))
	}
	redis := svc("redis")
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--appendonly yes") || !strings.HasPrefix(redis.Image, "redis:") {
		t.Errorf("redis: %s %q: want redis with AOF (--appendonly yes)", redis.Image, cmd)
	}
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--hash-max-listpack-value 512") {
		t.Errorf("redis: %q: want --hash-max-listpack-value 512, which keeps the state's bucket hashes compact", cmd)
	}

	var replicas []types.ServiceConfig
	for _, s := range p.Services {
		if s.Build != nil {
			replicas = append(replicas, s)
		}
	}
	if len(replicas) != 2 {
		t.Fatalf("%d healthscore services built here, want two replicas", len(replicas))
	}
	for _, s := range replicas {
		if s.Build.Dockerfile != "deployments/Dockerfile" {
			t.Errorf("%s: built from %s", s.Name, s.Build.Dockerfile)
		}
		cmd := strings.Join(s.Command, " ")
		if !strings.Contains(cmd, "--admin-http=:8081") || envOf(s, "HEALTHSCORE_BROKERS") != "kafka:9092" || envOf(s, "HEALTHSCORE_REDIS_URL") != "redis://redis:6379/0" {
			t.Errorf("%s: command %q env %v: want the admin port and the stack's Kafka and Redis", s.Name, cmd, s.Environment)
		}
		if envOf(s, "HEALTHSCORE_GROUP") != envOf(replicas[0], "HEALTHSCORE_GROUP") {
			t.Errorf("%s: the replicas must share one consumer group", s.Name)
		}
	}
	demo := svc("demo-producer")
	if cmd := strings.Join(demo.Command, " "); !strings.Contains(cmd, "--demo ") || !strings.Contains(cmd, "--demo-allow-external") {
		t.Errorf("demo-producer: command %q", cmd)
	} else if g := flagValue(demo.Command, "--group"); g == "" || g == envOf(replicas[0], "HEALTHSCORE_GROUP") {
		t.Errorf("demo-producer: group %q must differ from the replicas'", g)
	}
	for _, f := range []string{"--score-topic", "--alert-topic", "--dlq-topic"} {
		if v := flagValue(demo.Command, f); !strings.HasPrefix(v, "demo-") {
			t.Errorf("demo-producer: %s=%q: its outputs must not mix with the replicas'", f, v)
		}
	}

	// Prometheus: scrapes both replicas' admin ports, loads rules.yaml.
	prom := svc("prometheus")
	if src := mountSource(prom, "/etc/prometheus/rules.yaml"); src != mustAbs(t, rulesFile) {
		t.Errorf("prometheus: rules from %q, want %s", src, rulesFile)
	}
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	cfgPath := mountSource(prom, "/etc/prometheus/prometheus.yml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "healthscore" {
			t.Errorf("prometheus: job %q: the rules select job=\"healthscore\"", sc.JobName)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, s := range replicas {
		if !slices.Contains(targets, s.Name+":8081") {
			t.Errorf("prometheus does not scrape %s:8081 (targets %v)", s.Name, targets)
		}
	}
	if !slices.Equal(cfg.RuleFiles, []string{"/etc/prometheus/rules.yaml"}) {
		t.Errorf("prometheus rule_files %v", cfg.RuleFiles)
	}
	promtoolCheckConfig(t, raw)

	// Grafana: datasource and dashboards provisioned from files.
	graf := svc("grafana")
	dashDir := mountSource(graf, "/var/lib/grafana/dashboards")
	if dashDir != mustAbs(t, "grafana/dashboards") {
		t.Errorf("grafana: dashboards from %q", dashDir)
	}
	prov := mountSource(graf, "/etc/grafana/provisioning")
	var providers struct {
		Providers []struct {
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "healthscore.yaml"), &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || providers.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("grafana dashboard provider %+v: want files from /var/lib/grafana/dashboards", providers)
	}
	var ds struct {
		Datasources []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources", "prometheus.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana datasources %+v", ds)
	}
}

// promtoolCheckConfig runs `promtool check config` on the compose stack's
// Prometheus configuration, with the rule file's path made local.
func promtoolCheckConfig(t *testing.T, cfg []byte) {
	t.Helper()
	promtool := tool(t, "promtool")
	local := strings.ReplaceAll(string(cfg), "/etc/prometheus/rules.yaml", mustAbs(t, rulesFile))
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

func envOf(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func flagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func mountSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	return ""
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
