package procs_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/test/procs"
)

func TestMain(m *testing.M) {
	code := m.Run()
	procs.RemoveBinary()
	os.Exit(code)
}

// TestKillRestart checks the helper itself: a killed server is gone with
// its process group, a restarted one comes back on its ports with its state,
// and Close leaves no process behind.
func TestKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real eddy processes; skipped with -short")
	}
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := procs.New(t, procs.Config{})
		s := c.StartServer("solo", "")
		if l := c.Leader(); l != s {
			t.Fatalf("leader %s, want solo", l.ID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j, err := c.Client().Submit(ctx, api.SubmitJob{Name: "survives-restart"})
		if err != nil {
			t.Fatal(err)
		}
		first := s.PID()
		c.Kill("solo")
		if s.Alive() || processExists(first) {
			t.Fatalf("pid %d survived Kill", first)
		}
		c.Restart("solo")
		if s.PID() == first || !s.Alive() {
			t.Fatalf("restart: pid %d, alive %v", s.PID(), s.Alive())
		}
		c.Leader()
		if _, err := c.Client().Job(ctx, j.ID); err != nil {
			t.Fatalf("job after restart: %v", err)
		}
		pids = append(pids, first, s.PID())
	})
	for _, pid := range pids {
		if processExists(pid) {
			t.Errorf("pid %d survived the end of the test", pid)
		}
	}
}

func processExists(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestPoll(t *testing.T) {
	n := 0
	if err := procs.Poll(time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll: %v after %d calls", err, n)
	}
	err := procs.Poll(20*time.Millisecond, time.Millisecond, func() error { return errors.New("never") })
	if err == nil || err.Error() != "not within 20ms: never" {
		t.Fatalf("Poll: got %v", err)
	}
}

func TestMainCleanupOrder(t *testing.T) {
	m := procs.NewMain()
	var order []int
	m.Cleanup(func() { order = append(order, 1) })
	m.Cleanup(func() { order = append(order, 2) })
	dir := m.TempDir()
	m.Close()
	m.Close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("cleanups ran as %v, want [2 1]", order)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s not removed: %v", dir, err)
	}
}
