package deployments

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// healthscoreBinary builds cmd/healthscore of the service's module once per
// test run.
func healthscoreBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "hs-deploy")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "healthscore")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/healthscore")
		cmd.Dir = ".." // the service's module
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/healthscore: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// pendingFlags are flags of issue 12's contract (docs/production-*.md) that
// the manifests already use and that the binary of this branch does not
// have yet. The test fails once one exists, so that the list shrinks to
// nothing after the merge.
var pendingFlags = []string{}

// TestManifestsUseRealFlags: every flag and HEALTHSCORE_* variable that the
// Dockerfile, the compose stack and the Kubernetes overlays give
// `healthscore run` is one that `healthscore run -h` lists (or is pending
// the merge of issue 12), and the model file the manifests ship passes
// `healthscore model check`.
func TestManifestsUseRealFlags(t *testing.T) {
	bin := healthscoreBinary(t)
	help, _ := exec.Command(bin, "run", "-h").CombinedOutput() // exits 0 or 2; the text is what counts
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\(env (HEALTHSCORE_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(help), -1) {
		known["env:"+m[1]] = true
	}
	if !known["brokers"] || !known["env:HEALTHSCORE_BROKERS"] {
		t.Fatalf("cannot read the flags from `healthscore run -h`:\n%s", help)
	}

	used := map[string]string{} // flag or env:NAME → where
	useArgs := func(where string, args []string) {
		if len(args) == 0 || args[0] != "run" {
			t.Errorf("%s: command %q does not start with run", where, args)
			return
		}
		for _, a := range args[1:] {
			name, ok := strings.CutPrefix(a, "--")
			if !ok {
				t.Errorf("%s: argument %q: write flags as --name=value", where, a)
				continue
			}
			name, _, _ = strings.Cut(name, "=")
			used[name] = where
		}
	}
	useEnv := func(where, name string) {
		if strings.HasPrefix(name, "HEALTHSCORE_") {
			used["env:"+name] = where
		}
	}
	for _, overlay := range []string{"dev", "prod"} {
		r := render(t, overlay)
		c := r.deployment.Spec.Template.Spec.Containers[0]
		useArgs("kubernetes "+overlay, c.Args)
		for _, e := range c.Env {
			useEnv("kubernetes "+overlay, e.Name)
		}
		for k := range r.config(t) {
			useEnv("kubernetes "+overlay+" ConfigMap", k)
		}
	}
	for _, s := range loadCompose(t).Services {
		if s.Image != "healthscore:dev" {
			continue
		}
		useArgs("compose "+s.Name, s.Command)
		for k := range s.Environment {
			useEnv("compose "+s.Name, k)
		}
	}
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(raw))
	for _, in := range stages[len(stages)-1] {
		if in.cmd == "cmd" {
			useArgs("Dockerfile CMD", in.args)
		}
	}

	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch pending := slices.Contains(pendingFlags, n); {
		case known[n] && pending:
			t.Errorf("%s now exists in `healthscore run`: remove it from pendingFlags", n)
		case !known[n] && !pending:
			t.Errorf("%s (%s) is not a flag or variable of `healthscore run`", n, used[n])
		}
	}

	if out, err := exec.Command(bin, "model", "check", "kubernetes/base/model.yaml").CombinedOutput(); err != nil {
		t.Errorf("healthscore model check kubernetes/base/model.yaml: %v\n%s", err, out)
	}
}
