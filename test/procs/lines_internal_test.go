package procs

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestLineStamper: every complete line of either stream is recorded once,
// in arrival order, stamped with when its end arrived, and the streams'
// bytes are kept whole.
func TestLineStamper(t *testing.T) {
	s := &lineStamper{start: time.Now()}
	var out, errb bytes.Buffer
	o, e := s.stream(&out, false), s.stream(&errb, true)
	write := func(w io.Writer, s string) {
		t.Helper()
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(o, "first\nsec")
	time.Sleep(20 * time.Millisecond)
	write(e, "warn\n")
	write(o, "ond\n\nlast")
	want := []Line{{Text: "first"}, {Text: "warn", Stderr: true}, {Text: "second"}, {Text: ""}}
	if len(s.lines) != len(want) {
		t.Fatalf("lines %+v, want %+v", s.lines, want)
	}
	for i, l := range s.lines {
		if l.Text != want[i].Text || l.Stderr != want[i].Stderr {
			t.Errorf("line %d: %+v, want %+v", i, l, want[i])
		}
	}
	if s.lines[0].At >= 20*time.Millisecond || s.lines[2].At < 20*time.Millisecond || s.lines[2].At < s.lines[1].At {
		t.Errorf("stamps %v %v %v: want the first before the pause, the others after it", s.lines[0].At, s.lines[1].At, s.lines[2].At)
	}
	if out.String() != "first\nsecond\n\nlast" || errb.String() != "warn\n" {
		t.Errorf("streams %q and %q", out.String(), errb.String())
	}
}
