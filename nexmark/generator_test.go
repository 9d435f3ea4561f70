package nexmark_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/nexmark"
	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// testConfig is the configuration of the tests: n events, 1000 events per
// second of event time, so that 50,000 events span 50 s and the window
// queries see many windows.
func testConfig(n int64) nexmark.Config {
	cfg := nexmark.DefaultConfig()
	cfg.Events = n
	cfg.EventRate = 1000
	return cfg
}

// generate returns the events of cfg, made one by one by the generator.
func generate(t testing.TB, cfg nexmark.Config) []nexmark.Event {
	t.Helper()
	g, err := nexmark.NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]nexmark.Event, cfg.Events)
	for i := range out {
		out[i] = g.Event(int64(i))
	}
	return out
}

func TestGeneratorIsDeterministic(t *testing.T) {
	cfg := testConfig(5000)
	a, b := generate(t, cfg), generate(t, cfg)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("event %d differs between two generators:\n%v\n%v", i, a[i], b[i])
		}
	}
	g, _ := nexmark.NewGenerator(cfg)
	for i := len(a) - 1; i >= 0; i -= 7 {
		if e := g.Event(int64(i)); e != a[i] {
			t.Fatalf("event %d differs when made out of order:\n%v\n%v", i, e, a[i])
		}
	}
	cfg.Seed = 42
	other := generate(t, cfg)
	same := 0
	for i := range a {
		if a[i] == other[i] {
			same++
		}
	}
	if same > len(a)/100 {
		t.Errorf("seed 42 gives %d of %d events equal to seed 0's", same, len(a))
	}
}

func TestGeneratorProportions(t *testing.T) {
	const n = 50_000
	var counts [3]int
	for _, e := range generate(t, testConfig(n)) {
		counts[e.Kind]++
	}
	if want := [3]int{n / 50, n / 50 * 3, n / 50 * 46}; counts != want {
		t.Errorf("person, auction, bid counts %v, want %v", counts, want)
	}
}

func TestGeneratorFields(t *testing.T) {
	const n = 50_000
	cfg := testConfig(n)
	events := generate(t, cfg)
	lastPerson, lastAuction := int64(-1), int64(-1)
	var prev int64
	channels := map[string]bool{}
	for i, e := range events {
		id := int64(i)
		ts := e.Time()
		if want := cfg.BaseTime + id; ts != want { // 1000 events per second: 1 ms apart
			t.Fatalf("event %d: time %d, want %d", i, ts, want)
		}
		if ts < prev {
			t.Fatalf("event %d: time %d before the previous event's %d", i, ts, prev)
		}
		prev = ts
		switch e.Kind {
		case nexmark.KindPerson:
			p := e.Person
			lastPerson++
			if p.ID != lastPerson+nexmark.FirstPersonID {
				t.Fatalf("event %d: person id %d, want %d", i, p.ID, lastPerson+nexmark.FirstPersonID)
			}
			if p.Name == "" || !strings.Contains(p.EmailAddress, "@") || len(p.CreditCard) != 19 || p.City == "" ||
				len(p.State) != 2 {
				t.Fatalf("event %d: person %v", i, p)
			}
			size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
			if size < 160 || size > 240 {
				t.Fatalf("event %d: person of %d bytes, want about 200", i, size)
			}
		case nexmark.KindAuction:
			a := e.Auction
			lastAuction++
			if a.ID != lastAuction+nexmark.FirstAuctionID {
				t.Fatalf("event %d: auction id %d, want %d", i, a.ID, lastAuction+nexmark.FirstAuctionID)
			}
			if a.Seller < nexmark.FirstPersonID || a.Seller > lastPerson+10+nexmark.FirstPersonID {
				t.Fatalf("event %d: seller %d beyond the last person %d and the lead", i, a.Seller, lastPerson+nexmark.FirstPersonID)
			}
			if a.Category < 10 || a.Category > 14 {
				t.Fatalf("event %d: category %d", i, a.Category)
			}
			if a.Expires <= a.DateTime || a.Reserve < a.InitialBid || a.InitialBid < 1 {
				t.Fatalf("event %d: auction %v", i, a)
			}
			if len(a.ItemName) > 19 || len(a.Description) > 99 {
				t.Fatalf("event %d: item name %q or description %q too long", i, a.ItemName, a.Description)
			}
		case nexmark.KindBid:
			b := e.Bid
			if b.Auction < nexmark.FirstAuctionID || b.Auction > lastAuction+10+nexmark.FirstAuctionID {
				t.Fatalf("event %d: bid on auction %d beyond the last auction %d and the lead", i, b.Auction, lastAuction+nexmark.FirstAuctionID)
			}
			if b.Bidder < nexmark.FirstPersonID || b.Bidder > lastPerson+10+nexmark.FirstPersonID {
				t.Fatalf("event %d: bidder %d beyond the last person %d and the lead", i, b.Bidder, lastPerson+nexmark.FirstPersonID)
			}
			if b.Price < 1 || b.Price > 100_000_000 {
				t.Fatalf("event %d: price %d", i, b.Price)
			}
			if !strings.HasPrefix(b.URL, "https://www.nexmark.com/") || b.Channel == "" {
				t.Fatalf("event %d: channel %q, url %q", i, b.Channel, b.URL)
			}
			if n := 32 + len(b.Extra); n < 86 || n > 114 {
				t.Fatalf("event %d: bid of %d bytes, want about 100", i, n)
			}
			channels[b.Channel] = true
		}
	}
	if len(channels) < 1000 {
		t.Errorf("bids use %d channels, want thousands", len(channels))
	}
}

func TestGeneratorOutOfOrderGroups(t *testing.T) {
	cfg := testConfig(10_000)
	cfg.OutOfOrderGroupSize = 10
	g, err := nexmark.NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inOrder := generate(t, testConfig(10_000))
	seen := map[int64]bool{}
	for i := range int64(10_000) {
		id := g.ID(i)
		if id/10 != i/10 {
			t.Fatalf("event %d has id %d, outside its group", i, id)
		}
		if seen[id] {
			t.Fatalf("id %d made twice", id)
		}
		seen[id] = true
		// The permutation moves whole events: event i is the in-order
		// event of its id.
		if e := g.Event(i); e != inOrder[id] {
			t.Fatalf("event %d (id %d) differs from the in-order event %d", i, id, id)
		}
	}
}

func TestGeneratorGenerators(t *testing.T) {
	cfg := testConfig(1000)
	cfg.NumGenerators = 4
	events := generate(t, cfg)
	// Four timelines of 250 events, each advancing 4 ms per event.
	for i, e := range events {
		if want := cfg.BaseTime + int64(i%250)*4; e.Time() != want {
			t.Fatalf("event %d: time %d, want %d", i, e.Time(), want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for name, change := range map[string]func(*nexmark.Config){
		"rate":       func(c *nexmark.Config) { c.EventRate = 0 },
		"generators": func(c *nexmark.Config) { c.NumGenerators = 0 },
		"group":      func(c *nexmark.Config) { c.OutOfOrderGroupSize = 0 },
		"limit":      func(c *nexmark.Config) { c.RateLimit = -1 },
		"first id":   func(c *nexmark.Config) { c.FirstEventID = -1 },
	} {
		cfg := nexmark.DefaultConfig()
		change(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := nexmark.DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// runJob runs job locally at parallelism p and fails the test on error.
func runJob(t *testing.T, job *sdk.Job, p int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sdk.RunLocal(ctx, job, sdk.LocalParallelism(p)); err != nil {
		t.Fatalf("run %s at parallelism %d: %v", job.Name(), p, err)
	}
}

var parallelisms = []int{1, 4}

func TestSourceEmitsEveryEventOnce(t *testing.T) {
	for _, n := range []int64{0, 1, 499, 12_345} {
		for _, p := range []int{1, 3, 4} {
			t.Run(fmt.Sprintf("n=%d/p=%d", n, p), func(t *testing.T) {
				cfg := testConfig(n)
				job := sdk.NewJob("source")
				out := sdk.Collect[nexmark.Event]()
				sdk.SinkTo(nexmark.Events(job, cfg), out, sdk.WithUID("out"))
				runJob(t, job, p)
				sameEvents(t, out.Records(), generate(t, cfg))
			})
		}
	}
}

// sameEvents fails unless got and want hold the same events, each as
// often.
func sameEvents(t *testing.T, got, want []nexmark.Event) {
	t.Helper()
	counts := map[nexmark.Event]int{}
	for _, e := range want {
		counts[e]++
	}
	for _, e := range got {
		counts[e]--
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for e, c := range counts {
		if c != 0 {
			t.Fatalf("event %v: %+d times too many", e, -c)
		}
	}
}

// sourceContext is a SourceContext for reading a source by hand.
type sourceContext struct{ subtask, parallelism int }

func (c sourceContext) Subtask() int     { return c.subtask }
func (c sourceContext) Parallelism() int { return c.parallelism }

// collector keeps what a reader emits.
type collector struct{ events []nexmark.Event }

func (c *collector) Collect(e nexmark.Event) { c.events = append(c.events, e) }

func TestSourceResumesFromSnapshotAtAnotherParallelism(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(20_000)
	src := nexmark.Source(cfg)
	var got collector
	var snapshot []sdk.Split
	// Three subtasks read a few batches each and snapshot.
	for k := range 3 {
		sc := sourceContext{k, 3}
		splits, err := src.Splits(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		var mine []sdk.Split
		for i, s := range splits {
			if i%3 == k {
				mine = append(mine, s)
			}
		}
		r, err := src.Open(ctx, sc, mine)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 + k {
			if _, err := r.Read(ctx, &got); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		snapshot = append(snapshot, snap...)
		_ = r.Close()
	}
	// Two subtasks resume them.
	for k := range 2 {
		sc := sourceContext{k, 2}
		var mine []sdk.Split
		for i, s := range snapshot {
			if i%2 == k {
				mine = append(mine, s)
			}
		}
		r, err := src.Open(ctx, sc, mine)
		if err != nil {
			t.Fatal(err)
		}
		for {
			st, err := r.Read(ctx, &got)
			if err != nil {
				t.Fatal(err)
			}
			if st == sdk.Done {
				break
			}
		}
	}
	sameEvents(t, got.events, generate(t, cfg))
}

func TestSourceRejectsCorruptState(t *testing.T) {
	src := nexmark.Source(testConfig(10))
	for _, state := range [][]byte{nil, {2, 0, 1, 1}, {1, 0, 0, 1}, {1, 0, 1}} {
		if _, err := src.Open(context.Background(), sourceContext{0, 1}, []sdk.Split{{ID: "x", State: state}}); err == nil {
			t.Errorf("state %v: no error", state)
		}
	}
}

func TestSourceRateLimit(t *testing.T) {
	cfg := testConfig(300)
	cfg.RateLimit = 1000
	job := sdk.NewJob("limited")
	out := sdk.Collect[nexmark.Event]()
	sdk.SinkTo(nexmark.Events(job, cfg), out, sdk.WithUID("out"))
	start := time.Now()
	runJob(t, job, 2)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("300 events at 1000 per second took %v", took)
	}
	sameEvents(t, out.Records(), generate(t, cfg))
}

func TestUnboundedSource(t *testing.T) {
	cfg := testConfig(-1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job := sdk.NewJob("unbounded")
	stop := &stopAfter{n: 5000, cancel: cancel}
	sdk.SinkTo(nexmark.Events(job, cfg), stop, sdk.WithUID("out"))
	_ = sdk.RunLocal(ctx, job, sdk.LocalParallelism(2))
	g, _ := nexmark.NewGenerator(cfg)
	valid := map[nexmark.Event]bool{}
	for i := range int64(2 * 5000 * 4) {
		valid[g.Event(i)] = true
	}
	if len(stop.got) < 5000 {
		t.Fatalf("got %d events before the cancel, want 5000", len(stop.got))
	}
	for _, e := range stop.got {
		if !valid[e] {
			t.Fatalf("event %v is not among the first events", e)
		}
	}
}

// stopAfter is a sink that keeps the first n events and then cancels the
// job.
type stopAfter struct {
	mu     sync.Mutex
	n      int
	got    []nexmark.Event
	cancel context.CancelFunc
}

func (s *stopAfter) Open(context.Context, sdk.SinkContext) (sdk.Writer[nexmark.Event], error) {
	return s, nil
}

func (s *stopAfter) Write(_ context.Context, e nexmark.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) < s.n {
		s.got = append(s.got, e)
		if len(s.got) == s.n {
			s.cancel()
		}
	}
	return nil
}

func (s *stopAfter) Flush(context.Context) error { return nil }
func (s *stopAfter) Close(context.Context) error { return nil }

func BenchmarkGenerator(b *testing.B) {
	g, err := nexmark.NewGenerator(nexmark.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var e nexmark.Event
	for i := range int64(b.N) {
		g.Fill(i, &e)
	}
}
