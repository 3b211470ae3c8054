package deployments

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	rulesFile          = "prometheus/rules.yaml"
	rulesTestFile      = "prometheus/rules_test.yaml"
	prometheusRuleFile = "kubernetes/base/prometheusrule.yaml"
	runbooksFile       = "../docs/runbooks.md"
	runbookURLPrefix   = "https://github.com/healthscore/healthscore/blob/main/docs/runbooks.md#"
)

// tool returns the path of a program that the checks need. It skips the test
// when the program is missing, unless HEALTHSCORE_REQUIRE_REDIS=1 (what
// `make test` sets: no silent skips in CI), then it fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HEALTHSCORE_REQUIRE_REDIS") == "1" {
			t.Fatalf("%s is not installed (Debian: apt-get install prometheus); scripts/test.sh installs it", name)
		}
		t.Skipf("%s is not installed (Debian: apt-get install prometheus)", name)
	}
	return p
}

type ruleGroups struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval"`
		Rules    []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var g ruleGroups
	if err := yaml.UnmarshalStrict(raw, &g); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, gr := range g.Groups {
		out = append(out, gr.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return out
}

// TestRulesPromtool runs `promtool check rules` and the unit tests of
// rules_test.yaml (`promtool test rules`).
func TestRulesPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertUnitTestedBothWays: every alert of rules.yaml has a promtool
// case where it fires and one where it does not.
func TestEveryAlertUnitTestedBothWays(t *testing.T) {
	raw, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("%s: no promtool case where it fires", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no promtool case where it does not fire", r.Alert)
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

// TestAlertsHaveSeverityAndRunbooks: every alert has a severity and a
// summary, a description and a runbook_url that points at a heading of
// docs/runbooks.md; every runbook heading belongs to an alert.
func TestAlertsHaveSeverityAndRunbooks(t *testing.T) {
	doc, err := os.ReadFile(runbooksFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	used := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !regexp.MustCompile(`^Healthscore[A-Z][A-Za-z]+$`).MatchString(r.Alert) {
			t.Errorf("%s: alert names are Healthscore<CamelCase>", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURLPrefix)
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, r.Annotations["runbook_url"], runbookURLPrefix)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("%s: runbook anchor %q, want %q", r.Alert, anchor, strings.ToLower(r.Alert))
		case !anchors[anchor]:
			t.Errorf("%s: %s has no heading for #%s", r.Alert, runbooksFile, anchor)
		}
		used[anchor] = true
	}
	for a := range anchors {
		if strings.HasPrefix(a, "healthscore") && !used[a] {
			t.Errorf("%s: runbook #%s has no alert", runbooksFile, a)
		}
	}
}

// prometheusRule is the part of a monitoring.coreos.com/v1 PrometheusRule
// that the checks read.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

// renderPrometheusRule wraps rules.yaml into the PrometheusRule of the
// Kubernetes base.
func renderPrometheusRule(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	pr := prometheusRule{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule", Spec: spec}
	pr.Metadata.Name = "healthscore"
	pr.Metadata.Labels = map[string]string{"app.kubernetes.io/name": "healthscore"}
	out, err := yaml.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	header := "# GENERATED from deployments/prometheus/rules.yaml, the one source of the alerts:\n" +
		"# do not edit. Regenerate with\n" +
		"#   cd deployments && HEALTHSCORE_UPDATE=1 go test -run TestPrometheusRuleIsTheRulesFile .\n"
	return append([]byte(header), out...)
}

// TestPrometheusRuleIsTheRulesFile: the PrometheusRule that kustomize
// deploys carries exactly the groups of prometheus/rules.yaml. With
// HEALTHSCORE_UPDATE=1 it rewrites the PrometheusRule instead.
func TestPrometheusRuleIsTheRulesFile(t *testing.T) {
	want := renderPrometheusRule(t)
	if os.Getenv("HEALTHSCORE_UPDATE") == "1" {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s: regenerate it with\n  cd deployments && HEALTHSCORE_UPDATE=1 go test -run TestPrometheusRuleIsTheRulesFile .", prometheusRuleFile, rulesFile)
	}
	// And semantically: the spec holds the same groups, rule by rule.
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(got, &pr); err != nil {
		t.Fatal(err)
	}
	var plain map[string]any
	raw, _ := os.ReadFile(rulesFile)
	if err := yaml.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr.Spec, plain) {
		t.Fatal("the PrometheusRule's spec is not rules.yaml")
	}
	if pr.Kind != "PrometheusRule" || !slices.Contains([]string{"monitoring.coreos.com/v1"}, pr.APIVersion) {
		t.Fatalf("kind %s %s", pr.APIVersion, pr.Kind)
	}
}
