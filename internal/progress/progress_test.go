package progress

import (
	"strings"
	"testing"
)

func TestBar(t *testing.T) {
	var out strings.Builder
	b := &Bar{W: &out, Label: "simulate", Total: 4}
	for _, d := range []int{0, 1, 1, 2, 4, 9} {
		b.Set(d)
	}
	b.Done()
	// Repeated percents are not redrawn; 9 clamps to 4 (100%, drawn once).
	want := "\rsimulate [>                             ]   0% (0/4)" +
		"\rsimulate [=======>                      ]  25% (1/4)" +
		"\rsimulate [===============>              ]  50% (2/4)" +
		"\rsimulate [==============================] 100% (4/4)\n"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}
	var nop *Bar
	nop.Set(1) // a nil bar draws nothing and does not panic
	nop.Done()
	(&Bar{}).Set(1)
}
