package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestFlagsDocumented: every flag of `healthscore run` has a row in a
// table of docs/operations.md: the flag in the first cell, its environment
// twin in the second.
func TestFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string // first and second cells of the flag tables' rows
	for _, l := range strings.Split(string(doc), "\n") {
		if cells := strings.Split(l, "|"); strings.HasPrefix(l, "| `--") && len(cells) > 3 {
			rows = append(rows, cells[1:3])
		}
	}
	f, err := parseServiceFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	f.env.fs.VisitAll(func(fl *flag.Flag) {
		n++
		env := f.env.envOf[fl.Name]
		for _, r := range rows {
			if strings.Contains(r[0], "`--"+fl.Name+"`") {
				if env == "" || !strings.Contains(r[1], "`"+env+"`") {
					t.Errorf("docs/operations.md: the row of --%s does not name its environment variable %s", fl.Name, env)
				}
				return
			}
		}
		t.Errorf("docs/operations.md has no table row for --%s", fl.Name)
	})
	if n < 50 {
		t.Errorf("only %d flags seen", n)
	}
}
