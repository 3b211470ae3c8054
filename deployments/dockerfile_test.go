package deployments

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type instruction struct {
	cmd   string   // lower case: from, run, user, ...
	args  []string // as the parser split them
	flags []string
	line  int
	orig  string
}

// parseDockerfile parses a Dockerfile with BuildKit's parser (what `docker
// build` uses) into its stages' instructions.
func parseDockerfile(t *testing.T, src string) [][]instruction {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages [][]instruction
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToLower(n.Value), flags: n.Flags, line: n.StartLine, orig: n.Original}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		if in.cmd == "from" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

var (
	digestRe      = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	exactTagRe    = regexp.MustCompile(`:\d+\.\d+\.\d+(-[a-z0-9]+)?$`)
	secretNameRe  = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private_?key|credential)`)
	goDirectiveRe = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)
)

// dockerfileProblems returns what is wrong with a Dockerfile by the
// project's rules: multi-stage, pinned bases, a static -trimpath build, a
// non-root user in the final stage, no secrets in ENV or ARG, exec-form
// ENTRYPOINT.
func dockerfileProblems(t *testing.T, src string) []string {
	t.Helper()
	stages := parseDockerfile(t, src)
	var problems []string
	if len(stages) < 2 {
		problems = append(problems, "want a multi-stage build (build stage, then runtime)")
	}
	var names []string
	var staticBuild bool
	for i, st := range stages {
		from := st[0]
		image := from.args[0]
		if len(from.args) == 3 && strings.EqualFold(from.args[1], "as") {
			names = append(names, from.args[2])
		}
		if !slices.Contains(names[:max(0, len(names)-1)], image) && !digestRe.MatchString(image) && !exactTagRe.MatchString(image) {
			problems = append(problems, "FROM "+image+": pin the base by digest or an exact version tag")
		}
		var user string
		for _, in := range st {
			switch in.cmd {
			case "env", "arg":
				for _, a := range in.args {
					name, _, _ := strings.Cut(a, "=")
					if secretNameRe.MatchString(name) {
						problems = append(problems, strings.ToUpper(in.cmd)+" "+name+": secrets must not be baked into the image (use build secrets or runtime env)")
					}
				}
			case "run":
				cmd := strings.Join(in.args, " ")
				if strings.Contains(cmd, "go build") {
					if strings.Contains(cmd, "CGO_ENABLED=0") && strings.Contains(cmd, "-trimpath") {
						staticBuild = true
					}
				}
				if secretNameRe.MatchString(cmd) && !slices.ContainsFunc(in.flags, func(f string) bool { return strings.Contains(f, "type=secret") }) {
					problems = append(problems, "RUN line "+in.orig+": looks like it handles a secret without a secret mount")
				}
			case "user":
				user = in.args[0]
			}
		}
		if i == len(stages)-1 {
			u, _, _ := strings.Cut(user, ":")
			if u == "" || u == "root" || u == "0" {
				problems = append(problems, "the final stage must set a non-root USER")
			}
			var entry *instruction
			for j := range st {
				if st[j].cmd == "entrypoint" {
					entry = &st[j]
				}
			}
			if entry == nil || !strings.Contains(entry.orig, "[") {
				problems = append(problems, "the final stage needs an exec-form ENTRYPOINT [\"…\"] (signals reach the binary)")
			}
		}
	}
	if !staticBuild {
		problems = append(problems, "no `CGO_ENABLED=0 go build -trimpath` (the static binary CI tests)")
	}
	return problems
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	for _, p := range dockerfileProblems(t, src) {
		t.Error(p)
	}
	stages := parseDockerfile(t, src)
	final := stages[len(stages)-1]
	if base := final[0].args[0]; !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.Contains(base, ":nonroot@") {
		t.Errorf("runtime base %s: want distroless static nonroot, pinned", base)
	}
	var exposed []string
	for _, in := range final {
		if in.cmd == "expose" {
			exposed = append(exposed, in.args...)
		}
	}
	if !slices.Equal(exposed, []string{"8080", "8081"}) {
		t.Errorf("EXPOSE %v, want 8080 (--http) and 8081 (--admin-http)", exposed)
	}
	// The Go of the build stage is at least go.mod's.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := goDirectiveRe.FindSubmatch(mod)
	if m == nil || !strings.HasPrefix(stages[0][0].args[0], "golang:"+string(m[1])+".") {
		t.Errorf("build stage %s: want golang:%s.x to match go.mod", stages[0][0].args[0], m[1])
	}
}

// TestDockerfileRulesCatchMistakes: each rule fails on a Dockerfile that
// breaks it.
func TestDockerfileRulesCatchMistakes(t *testing.T) {
	good := "FROM golang:1.26.8 AS build\nRUN CGO_ENABLED=0 go build -trimpath -o /x .\n" +
		"FROM gcr.io/distroless/static-debian12:nonroot@sha256:" + strings.Repeat("a", 64) + "\nCOPY --from=build /x /x\nUSER nonroot\nENTRYPOINT [\"/x\"]\n"
	if p := dockerfileProblems(t, good); len(p) > 0 {
		t.Fatalf("the good Dockerfile has problems: %v", p)
	}
	for name, bad := range map[string]string{
		"unpinned":  strings.Replace(good, "golang:1.26.8", "golang:latest", 1),
		"root":      strings.Replace(good, "USER nonroot", "USER root", 1),
		"no user":   strings.Replace(good, "USER nonroot\n", "", 1),
		"cgo":       strings.Replace(good, "CGO_ENABLED=0 ", "", 1),
		"secret":    strings.Replace(good, "USER nonroot", "ENV REDIS_PASSWORD=hunter2\nUSER nonroot", 1),
		"arg token": strings.Replace(good, "FROM golang", "ARG X=1\nFROM golang", 1) + "ARG API_TOKEN\n",
		"shell":     strings.Replace(good, `ENTRYPOINT ["/x"]`, "ENTRYPOINT /x", 1),
	} {
		if p := dockerfileProblems(t, bad); len(p) == 0 {
			t.Errorf("%s: no problem found in\n%s", name, bad)
		}
	}
}

// TestDockerignore: the build context has the service's sources and not the
// repository's history or ops files.
func TestDockerignore(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for path, wantIgnored := range map[string]bool{
		".git/config": true, "deployments/go.mod": true, "consumer/consumer.test": true,
		"go.mod": false, "go.sum": false, "cmd/healthscore/main.go": false, "scorer/default_model.yaml": false,
	} {
		ignored, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatal(err)
		}
		if ignored != wantIgnored {
			t.Errorf("%s: ignored %v, want %v", path, ignored, wantIgnored)
		}
	}
}
