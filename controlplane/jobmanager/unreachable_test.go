package jobmanager

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// answeringWorker answers PrepareJob by job id: "busy" with the worker's own
// Unavailable, "slow" not before the call's deadline, "hang" not at all
// until release is closed; anything else with success.
type answeringWorker struct {
	eddypb.UnimplementedWorkerServiceServer
	entered chan struct{}
	release chan struct{}
}

func (w *answeringWorker) PrepareJob(ctx context.Context, req *eddypb.PrepareJobRequest) (*eddypb.PrepareJobResponse, error) {
	switch req.JobId {
	case "busy":
		return nil, status.Error(codes.Unavailable, "the worker is shutting down")
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	case "hang":
		w.entered <- struct{}{}
		<-w.release
	}
	return &eddypb.PrepareJobResponse{}, nil
}

// Only calls that never reached the worker mark it unreachable: a worker
// that answers with an error, even Unavailable, or answers too slowly, is
// reachable.
func TestOnlyConnectionFailuresMarkAWorkerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aw := &answeringWorker{entered: make(chan struct{}), release: make(chan struct{})}
	gs := grpc.NewServer()
	eddypb.RegisterWorkerServiceServer(gs, aw)
	go func() { _ = gs.Serve(ln) }()
	defer close(aw.release)
	defer gs.Stop()

	var mu sync.Mutex
	conns := map[string]*grpc.ClientConn{}
	var marked []string
	m := New(nil, Config{
		Worker: func(addr string) (eddypb.WorkerServiceClient, error) {
			if addr == "bad" {
				return nil, errors.New("no client")
			}
			mu.Lock()
			defer mu.Unlock()
			c, ok := conns[addr]
			if !ok {
				var err error
				if c, err = grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
					return nil, err
				}
				conns[addr] = c
			}
			return eddypb.NewWorkerServiceClient(c), nil
		},
		Unreachable: func(id controlplane.WorkerID, instance string, err error) {
			mu.Lock()
			marked = append(marked, string(id)+"/"+instance)
			mu.Unlock()
		},
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	w := workerRef{id: "w1", addr: ln.Addr().String(), instance: "i1"}
	prepare := func(w workerRef, job string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return m.callWorker(w, func(c eddypb.WorkerServiceClient, opts ...grpc.CallOption) error {
			_, err := c.PrepareJob(ctx, &eddypb.PrepareJobRequest{JobId: job}, opts...)
			return err
		})
	}
	markedSoFar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), marked...)
	}

	if err := prepare(w, "ok", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := prepare(w, "busy", 5*time.Second); status.Code(err) != codes.Unavailable {
		t.Fatalf("busy worker: %v, want its Unavailable", err)
	}
	if err := prepare(w, "slow", 100*time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow worker: %v, want DeadlineExceeded", err)
	}
	if err := prepare(workerRef{id: "w9", addr: "bad"}, "ok", time.Second); err == nil {
		t.Fatal("a worker without a client answered")
	}
	if got := markedSoFar(); len(got) != 0 {
		t.Fatalf("marked %v unreachable for answers or a local error", got)
	}

	// The worker dies during a call: the call is cut off, and the next one
	// is refused. Both mark the instance the call was made to.
	done := make(chan error, 1)
	go func() { done <- prepare(w, "hang", 5*time.Second) }()
	<-aw.entered
	gs.Stop()
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Fatalf("call cut off: %v, want Unavailable", err)
	}
	if got := markedSoFar(); len(got) != 1 || got[0] != "w1/i1" {
		t.Fatalf("after a cut-off call, marked %v, want w1/i1", got)
	}
	if err := prepare(w, "ok", 5*time.Second); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to a dead worker: %v, want Unavailable", err)
	}
	if got := markedSoFar(); len(got) != 2 || got[1] != "w1/i1" {
		t.Fatalf("after a refused call, marked %v, want w1/i1 twice", got)
	}
}

// The scheduler leaves the free slots of unreachable workers out, and
// counts them.
func TestFreeSlotsSkipUnreachableWorkers(t *testing.T) {
	f := fsm.New()
	index := uint64(0)
	for _, w := range []*eddypb.Worker{
		{Id: "w1", Address: "a1", Slots: 2, InstanceId: "i1"},
		{Id: "w2", Address: "a2", Slots: 3, InstanceId: "i2"},
		{Id: "w3", Address: "a3", Slots: 2, InstanceId: "i3"},
	} {
		index++
		data, err := fsm.Encode(fsm.CmdRegisterWorker, &eddypb.RegisterWorkerCommand{Worker: w, AtMs: 1})
		if err != nil {
			t.Fatal(err)
		}
		if resp := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data}).(*fsm.Response); resp.Err != nil {
			t.Fatal(resp.Err)
		}
	}
	free, total, skipped := freeSlots(f.State(), nil)
	if len(free) != 7 || total != 7 || skipped != 0 {
		t.Fatalf("all reachable: %d free of %d, %d skipped", len(free), total, skipped)
	}
	free, total, skipped = freeSlots(f.State(), func(w *eddypb.Worker) bool { return w.Id != "w2" })
	if len(free) != 4 || total != 7 || skipped != 3 {
		t.Fatalf("w2 unreachable: %d free of %d, %d skipped; want 4 of 7, 3 skipped", len(free), total, skipped)
	}
	for _, s := range free {
		if s.worker == "w2" {
			t.Fatalf("slot %d of unreachable w2 offered", s.slot)
		}
	}
}
