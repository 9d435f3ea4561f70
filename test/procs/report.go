package procs

import (
	"os"
	"strconv"
	"strings"
)

// The small helpers the benchmark programs share to report.

// LoadAvg returns the first three fields of /proc/loadavg, or "unknown":
// benchmark figures are only comparable with the load they ran under.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Commas formats a rate as an integer with thousands separators.
func Commas(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// WorkDir returns a new directory for a program's data dirs and logs,
// removed when m closes unless keep is set (then its path is logged).
func (m *Main) WorkDir(prefix string, keep bool) string {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		m.Fatalf("%v", err)
	}
	m.Cleanup(func() {
		if keep {
			m.Logf("data dirs and logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}
