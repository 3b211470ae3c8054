package deployments

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// dashboardFile is a dashboard as the lint rules and the live Prometheus
// test see it: a few fields, decoded leniently (the schema check is
// grafana-foundation-sdk's, in TestDashboardsMatchGrafanaSchema).
type dashboardFile struct {
	Path       string
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Inputs     json.RawMessage  `json:"__inputs"`
	Requires   json.RawMessage  `json:"__requires"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Datasource *dsRef          `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *dsRef `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

// dashboardPaths are the provisioned dashboards.
func dashboardPaths(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(paths) < 2 {
		t.Fatalf("want the service and customer-health dashboards in grafana/dashboards, got %v (%v)", paths, err)
	}
	return paths
}

func loadDashboards(t *testing.T) []dashboardFile {
	t.Helper()
	var out []dashboardFile
	for _, p := range dashboardPaths(t) {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboardFile{Path: p}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, d)
	}
	return out
}

// queryPanels returns the panels that run queries, rows flattened.
func (d dashboardFile) queryPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

// TestDashboardsMatchGrafanaSchema decodes every dashboard strictly with
// Grafana's own schema types (unknown or mistyped fields, missing required
// fields, unknown panel options all fail) and validates it.
func TestDashboardsMatchGrafanaSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins() // strict decoding of panel options and Prometheus queries
	for _, p := range dashboardPaths(t) {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// The classic dashboard schema (schemaVersion 39) is what Grafana's
		// file provisioning reads; dashboardv2 is the newer API's format.
		var d dashboard.Dashboard //lint:ignore SA1019 file-provisioned dashboards use this schema
		// Both return a cog.BuildErrors, a slice: a nil slice in a non-nil
		// error interface. Compare its length, not the interface with nil.
		if errs := buildErrors(d.UnmarshalJSONStrict(raw)); len(errs) > 0 {
			t.Errorf("%s: not a valid Grafana dashboard:\n%s", p, errs)
			continue
		}
		if errs := buildErrors(d.Validate()); len(errs) > 0 {
			t.Errorf("%s: invalid: %s", p, errs)
		}
		if d.Uid == nil || d.Title == nil || len(d.Panels) == 0 {
			t.Errorf("%s: decoded without uid, title or panels", p)
		}
	}
}

// buildErrors turns what the SDK returns into a list: a cog.BuildErrors
// (possibly nil inside a non-nil interface) or any other error.
func buildErrors(err error) []string {
	var out []string
	switch e := err.(type) {
	case nil:
	case cog.BuildErrors:
		for _, be := range e {
			out = append(out, be.Error())
		}
	default:
		out = append(out, err.Error())
	}
	return out
}

// TestBuildErrorsSeesTypedNil: on success the SDK returns a nil
// cog.BuildErrors inside a non-nil error; buildErrors reads it as no errors,
// and still sees real ones.
func TestBuildErrorsSeesTypedNil(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	const valid = `{"title":"x","templating":{"list":[]},"annotations":{"list":[]},"schemaVersion":39}`
	var d dashboard.Dashboard //lint:ignore SA1019 see TestDashboardsMatchGrafanaSchema
	err := d.UnmarshalJSONStrict([]byte(valid))
	if got := buildErrors(err); len(got) != 0 {
		t.Fatalf("a valid dashboard has errors %v (err %#v)", got, err)
	}
	if got := buildErrors(d.UnmarshalJSONStrict([]byte(strings.Replace(valid, "{", `{"bogus":1,`, 1)))); len(got) == 0 {
		t.Fatal("an unknown field was accepted: the strict check checks nothing")
	}
}

// The units the dashboards may use: Grafana's unit ids, as the SDK names
// them (a typo would show raw numbers).
var allowedUnits = []string{units.CountsPerSecond, units.Seconds, units.Short, units.PercentUnit}

var (
	rangeRe      = regexp.MustCompile(`\b(rate|irate|increase|delta|deriv)\(([^\[]*)\[([^\]]+)\]`)
	fixedWindows = []string{"1h"} // "per hour" panels
)

// TestDashboardLint checks the project's conventions: a datasource
// variable used by every panel and query, a fixed uid, a unit and a
// description on every panel, $__rate_interval in rates, no __inputs.
func TestDashboardLint(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.Inputs != nil || d.Requires != nil {
			t.Errorf("%s: has __inputs/__requires (an export for sharing); provisioned dashboards use the datasource variable", d.Path)
		}
		if !regexp.MustCompile(`^healthscore-[a-z-]+$`).MatchString(d.UID) {
			t.Errorf("%s: uid %q: want a fixed uid like healthscore-service (links and provisioning depend on it)", d.Path, d.UID)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", prev, d.Path, d.UID)
		}
		uids[d.UID] = d.Path
		var hasDS bool
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
				hasDS = true
			}
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
				t.Errorf("%s: variable %s does not query ${datasource}", d.Path, v.Name)
			}
		}
		if !hasDS {
			t.Errorf("%s: no datasource variable of type prometheus named datasource", d.Path)
		}
		raw, _ := os.ReadFile(d.Path)
		if bytes.Contains(raw, []byte("${DS_")) {
			t.Errorf("%s: refers to an import input ${DS_…}", d.Path)
		}
		ids := map[int]bool{}
		panels := d.queryPanels()
		if len(panels) < 5 {
			t.Errorf("%s: only %d panels", d.Path, len(panels))
		}
		for _, p := range panels {
			where := d.Path + ": panel " + p.Title
			if ids[p.ID] {
				t.Errorf("%s: duplicate id %d", where, p.ID)
			}
			ids[p.ID] = true
			if strings.TrimSpace(p.Description) == "" {
				t.Errorf("%s: no description", where)
			}
			if !slices.Contains(allowedUnits, p.FieldConfig.Defaults.Unit) {
				t.Errorf("%s: unit %q, want one of %v", where, p.FieldConfig.Defaults.Unit, allowedUnits)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
				t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			for _, q := range p.Targets {
				if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
					t.Errorf("%s: query %s does not use ${datasource}", where, q.RefID)
				}
				if !strings.Contains(q.Expr, `job=~"$job"`) || !strings.Contains(q.Expr, `instance=~"$instance"`) {
					t.Errorf("%s: query %s ignores the job or instance variable: %s", where, q.RefID, q.Expr)
				}
				for _, m := range rangeRe.FindAllStringSubmatch(q.Expr, -1) {
					fn, window := m[1], m[3]
					if window == "$__rate_interval" {
						continue
					}
					if fn == "increase" && slices.Contains(fixedWindows, window) {
						continue
					}
					t.Errorf("%s: %s over [%s]: use [$__rate_interval]", where, fn, window)
				}
			}
		}
	}
}

func TestDashboardLintCatchesMistakes(t *testing.T) {
	for _, c := range []struct{ expr, bad string }{
		{`rate(x[5m])`, "5m"},
		{`sum(irate(x{a="b"}[1m]))`, "1m"},
		{`increase(x[10m])`, "10m"},
	} {
		m := rangeRe.FindStringSubmatch(c.expr)
		if m == nil || m[3] != c.bad {
			t.Errorf("%s: window not found (got %v)", c.expr, m)
		}
	}
	if m := rangeRe.FindStringSubmatch(`rate(x[$__rate_interval])`); m == nil || m[3] != "$__rate_interval" {
		t.Errorf("the good case is not recognised: %v", m)
	}
}
