package sdk_test

// Tests of the two-input operators: Connect with CoProcess, and
// IntervalJoin. Names here start with "co" or "ij" so that they do not
// collide with other test files of the package; the scripted source
// etSource is in eventtime_test.go.

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// coOrder is a record of the first input of TestCoProcessSharesStatePerKey.
type coOrder struct {
	User   string
	Amount int
}

// coTotals counts, per user, the orders of the first input and the visits
// of the second (the user's name itself), in state both inputs share, and
// emits the totals from a timer that only the end of both inputs fires.
type coTotals struct {
	orders, amount, visits sdk.ValueState[int]
}

func (f *coTotals) Open(ctx sdk.RuntimeContext) error {
	f.orders = sdk.NewValueState[int](ctx, "orders")
	f.amount = sdk.NewValueState[int](ctx, "amount")
	f.visits = sdk.NewValueState[int](ctx, "visits")
	return nil
}

func (f *coTotals) ProcessElement1(ctx sdk.KeyedContext[string], o coOrder, _ sdk.Collector[string]) error {
	if ctx.Key() != o.User {
		return fmt.Errorf("order of %s processed under key %s", o.User, ctx.Key())
	}
	n, _ := f.orders.Value()
	f.orders.Update(n + 1)
	a, _ := f.amount.Value()
	f.amount.Update(a + o.Amount)
	if o.Amount >= 12 {
		sdk.Emit(ctx, coBig, o)
	}
	ctx.TimerService().RegisterEventTimeTimer(0)
	return nil
}

// coBig is the side output of coTotals' big orders.
var coBig = sdk.NewOutputTag[coOrder]("big")

func (f *coTotals) ProcessElement2(ctx sdk.KeyedContext[string], user string, _ sdk.Collector[string]) error {
	if ctx.Key() != user {
		return fmt.Errorf("visit of %s processed under key %s", user, ctx.Key())
	}
	n, _ := f.visits.Value()
	f.visits.Update(n + 1)
	ctx.TimerService().RegisterEventTimeTimer(0)
	return nil
}

func (f *coTotals) OnTimer(ctx sdk.KeyedContext[string], _ int64, out sdk.Collector[string]) error {
	if wm := ctx.TimerService().CurrentWatermark(); wm != sdk.MaxWatermark {
		return fmt.Errorf("timer fired at watermark %d, before both inputs ended", wm)
	}
	o, _ := f.orders.Value()
	a, _ := f.amount.Value()
	v, _ := f.visits.Value()
	out.Collect(fmt.Sprintf("%s orders=%d amount=%d visits=%d sub=%d", ctx.Key(), o, a, v, ctx.Subtask()))
	return nil
}

// Both inputs of a CoProcess are partitioned by their own key functions
// into one key type, so a key's records of both meet in one subtask and
// share its state; the operator's input ends only when both inputs have:
// a short first input does not fire the final timers early. Side outputs
// work as in Process.
func TestCoProcessSharesStatePerKey(t *testing.T) {
	users := []string{"ann", "bob", "cyd", "dee", "eve", "fay", "gus", "hal", "ivy", "jon", "kim"}
	var orders []coOrder
	bigOrders := 0
	for i := range 200 {
		orders = append(orders, coOrder{User: users[i%7], Amount: i%13 + 1})
		if i%13+1 >= 12 {
			bigOrders++
		}
	}
	var visits []string
	for i := range 20_000 {
		visits = append(visits, users[(i*5)%len(users)])
	}
	type totals struct{ orders, amount, visits int }
	want := map[string]*totals{}
	for _, o := range orders {
		if want[o.User] == nil {
			want[o.User] = &totals{}
		}
		want[o.User].orders++
		want[o.User].amount += o.Amount
	}
	for _, u := range visits {
		if want[u] == nil {
			want[u] = &totals{}
		}
		want[u].visits++
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("co-totals")
			os := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice(orders), sdk.WithUID("orders")), func(o coOrder) string { return o.User })
			vs := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice(visits), sdk.WithUID("visits")), func(u string) string { return u })
			res := sdk.CoProcess(sdk.Connect(os, vs), sdk.KeyedCoProcessFunction[string, coOrder, string, string](&coTotals{}), sdk.WithUID("totals"))
			out := sdk.Collect[string]()
			sdk.SinkTo(res, out)
			big := sdk.Collect[coOrder]()
			sdk.SinkTo(sdk.SideOutput(res, coBig), big)
			runJob(t, job, p)
			if got := len(big.Records()); got != bigOrders {
				t.Errorf("%d big orders in the side output, want %d", got, bigOrders)
			}
			got := out.Records()
			if len(got) != len(want) {
				t.Fatalf("%d rows, want one per key (%d):\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for _, line := range got {
				var u string
				var o, a, v, sub int
				if _, err := fmt.Sscanf(line, "%s orders=%d amount=%d visits=%d sub=%d", &u, &o, &a, &v, &sub); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				if w := want[u]; w == nil || *w != (totals{o, a, v}) {
					t.Fatalf("%s: got %d/%d/%d, want %+v", u, o, a, v, w)
				}
			}
		})
	}
}

// coSwitch turns the data of a key on or off from Ts on.
type coSwitch struct {
	Key string
	TS  int64
	On  bool
}

// coData is a data record.
type coData struct {
	Key string
	TS  int64
	V   int
}

// coGate passes a data record when, at its event time, the latest switch
// of its key at or before that time is on (off before any switch). The
// decision waits for a timer at the record's time, which fires only when
// both inputs' watermarks have passed it, so that every switch that
// matters has arrived, whatever the interleaving of the inputs.
type coGate struct {
	switches sdk.MapState[int64, bool]
	pending  sdk.MapState[int64, []int]
}

func (g *coGate) Open(ctx sdk.RuntimeContext) error {
	g.switches = sdk.NewMapState[int64, bool](ctx, "switches")
	g.pending = sdk.NewMapState[int64, []int](ctx, "pending")
	return nil
}

func (g *coGate) ProcessElement1(ctx sdk.KeyedContext[string], s coSwitch, _ sdk.Collector[coData]) error {
	if ctx.Timestamp() <= ctx.TimerService().CurrentWatermark() {
		return fmt.Errorf("switch at %d arrived after watermark %d", s.TS, ctx.TimerService().CurrentWatermark())
	}
	g.switches.Put(s.TS, s.On)
	return nil
}

func (g *coGate) ProcessElement2(ctx sdk.KeyedContext[string], d coData, _ sdk.Collector[coData]) error {
	vs, _ := g.pending.Get(d.TS)
	g.pending.Put(d.TS, append(vs, d.V))
	ctx.TimerService().RegisterEventTimeTimer(d.TS)
	return nil
}

func (g *coGate) OnTimer(ctx sdk.KeyedContext[string], ts int64, out sdk.Collector[coData]) error {
	latest, on := int64(-1), false
	for at, o := range g.switches.All() {
		if at <= ts && at > latest {
			latest, on = at, o
		}
	}
	// Timers fire in time order: switches before the latest are done with.
	var older []int64
	for at := range g.switches.All() {
		if at < latest {
			older = append(older, at)
		}
	}
	for _, at := range older {
		g.switches.Remove(at)
	}
	vs, _ := g.pending.Get(ts)
	g.pending.Remove(ts)
	if on {
		for _, v := range vs {
			out.Collect(coData{Key: ctx.Key(), TS: ts, V: v})
		}
	}
	return nil
}

// A control stream switches a data stream on and off per key, at event
// time. The control source is slow, so an operator that did not hold its
// event time at the minimum of both inputs would decide before the
// switches arrive; the result is checked against a plain computation.
func TestCoProcessControlStream(t *testing.T) {
	const keys, delay = 5, 20
	r := rand.New(rand.NewPCG(5, 5))
	var switches []coSwitch
	for k := range keys {
		for i := range 40 {
			// Unique times per key: 100 ms apart with jitter.
			switches = append(switches, coSwitch{Key: fmt.Sprint("k", k), TS: int64(i*100 + r.IntN(50)), On: r.IntN(3) > 0})
		}
	}
	switches = etShuffle(switches, func(s coSwitch) int64 { return s.TS }, delay, 1)
	var data []coData
	for i := range 8000 {
		data = append(data, coData{Key: fmt.Sprint("k", r.IntN(keys)), TS: int64(i/2 + r.IntN(10)), V: i})
	}
	data = etShuffle(data, func(d coData) int64 { return d.TS }, delay, 2)

	var want []string
	for _, d := range data {
		latest, on := int64(-1), false
		for _, s := range switches {
			if s.Key == d.Key && s.TS <= d.TS && s.TS > latest {
				latest, on = s.TS, s.On
			}
		}
		if on {
			want = append(want, fmt.Sprint(d.Key, "@", d.TS, "=", d.V))
		}
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("co-control")
			// Ten switches per read, a read every few milliseconds.
			ctl := &etSource[coSwitch]{splits: 1, step: func(_, call int, emit func(coSwitch)) (bool, error) {
				for i := call * 10; i < min(call*10+10, len(switches)); i++ {
					emit(switches[i])
				}
				return (call+1)*10 >= len(switches), nil
			}}
			control := sdk.FromSource(job, ctl, sdk.WithUID("control"), sdk.WithParallelism(1),
				sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, func(s coSwitch) int64 { return s.TS })))
			dataStream := sdk.FromSource(job, sdk.FromSlice(data), sdk.WithUID("data"),
				sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, func(d coData) int64 { return d.TS })))
			gated := sdk.CoProcess(
				sdk.Connect(sdk.KeyBy(control, func(s coSwitch) string { return s.Key }),
					sdk.KeyBy(dataStream, func(d coData) string { return d.Key })),
				sdk.KeyedCoProcessFunction[string, coSwitch, coData, coData](&coGate{}), sdk.WithUID("gate"))
			out := sdk.Collect[string]()
			sdk.SinkTo(sdk.Map(gated, func(d coData) string { return fmt.Sprint(d.Key, "@", d.TS, "=", d.V) }), out)
			runJob(t, job, p)
			sameRecords(t, out.Records(), slices.Clone(want))
		})
	}
}

// coWatch fires an event-time timer for every data record and reports,
// through fired, that one fired before the end of input.
type coWatch struct{ fired *atomic.Bool }

func (w coWatch) ProcessElement1(sdk.KeyedContext[int], etRec, sdk.Collector[int64]) error {
	return nil
}

func (w coWatch) ProcessElement2(ctx sdk.KeyedContext[int], r etRec, _ sdk.Collector[int64]) error {
	ctx.TimerService().RegisterEventTimeTimer(r.TS)
	return nil
}

func (w coWatch) OnTimer(ctx sdk.KeyedContext[int], ts int64, out sdk.Collector[int64]) error {
	if ctx.TimerService().CurrentWatermark() != sdk.MaxWatermark {
		w.fired.Store(true)
	}
	out.Collect(ts)
	return nil
}

// An input that is idle as a whole (its source marked idle) does not hold
// a two-input operator's event time back: a control stream that fell
// silent does not stop the data stream's timers.
func TestCoProcessIdleInputDoesNotHoldBack(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			var fired atomic.Bool
			deadline := time.Now().Add(20 * time.Second)
			job := sdk.NewJob("co-idle")
			ctl := &etSource[etRec]{splits: 1, step: func(_, call int, emit func(etRec)) (bool, error) {
				if call == 0 {
					emit(etRec{Split: 0, TS: 0})
				}
				return fired.Load(), nil
			}}
			n := 0
			dat := &etSource[etRec]{splits: 1, step: func(_, call int, emit func(etRec)) (bool, error) {
				if fired.Load() {
					return true, nil
				}
				if time.Now().After(deadline) {
					return true, fmt.Errorf("no timer fired while the control input was idle")
				}
				n++
				emit(etRec{Split: 1, TS: int64(10 * call)})
				return false, nil
			}}
			control := sdk.FromSource(job, ctl, sdk.WithUID("control"), sdk.WithParallelism(1),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(etTimestamp).WithIdleness(50*time.Millisecond)))
			data := sdk.FromSource(job, dat, sdk.WithUID("data"), sdk.WithParallelism(1),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(etTimestamp)))
			key := func(r etRec) int { return 0 }
			res := sdk.CoProcess(sdk.Connect(sdk.KeyBy(control, key), sdk.KeyBy(data, key)),
				sdk.KeyedCoProcessFunction[int, etRec, etRec, int64](coWatch{fired: &fired}), sdk.WithUID("watch"))
			out := sdk.Collect[int64]()
			sdk.SinkTo(res, out)
			runJob(t, job, p)
			if got := len(out.Records()); got != n {
				t.Fatalf("%d timers fired for %d records", got, n)
			}
		})
	}
}

// A stateful two-input operator needs a UID, and an interval join needs
// bounds in order.
func TestTwoInputOperatorsAreChecked(t *testing.T) {
	job := sdk.NewJob("checks")
	a := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice([]int{1}), sdk.WithUID("source-1")), func(v int) int { return v })
	b := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice([]string{"x"}), sdk.WithUID("source-2")), func(string) int { return 1 })
	sdk.SinkTo(sdk.CoProcess(sdk.Connect(a, b), sdk.KeyedCoProcessFunction[int, int, string, int](coNop{})), sdk.Collect[int]())
	sdk.SinkTo(sdk.IntervalJoin(a, b, time.Second, -time.Second, func(int, string) int { return 0 }, sdk.WithUID("join")), sdk.Collect[int]())
	err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1))
	if err == nil {
		t.Fatal("the job ran")
	}
	for _, want := range []string{"co_process", "add sdk.WithUID", "lower bound 1s is above upper bound -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

type coNop struct{}

func (coNop) ProcessElement1(sdk.KeyedContext[int], int, sdk.Collector[int]) error    { return nil }
func (coNop) ProcessElement2(sdk.KeyedContext[int], string, sdk.Collector[int]) error { return nil }

// ijLeft and ijRight are the two sides of the interval join tests.
type ijLeft struct {
	Key int
	ID  int
	TS  int64
}

type ijRight struct {
	Key int
	ID  int
	TS  int64
}

// ijPair is a joined pair with the timestamp the join gave it.
type ijPair struct {
	Key, L, R int
	TS        int64
}

func (p ijPair) String() string { return fmt.Sprintf("%d:%d-%d@%d", p.Key, p.L, p.R, p.TS) }

// ijSource emits records one per Read from each of four splits (record i
// in split i mod 4), so that watermarks advance after every record and
// the join is tested right at the edges of its bounds; or, with batched,
// the slice as FromSlice does.
func ijSource[T any](recs []T, batched bool) sdk.Source[T] {
	if batched {
		return sdk.FromSlice(recs)
	}
	return &etSource[T]{splits: 4, more: true, step: func(split, call int, emit func(T)) (bool, error) {
		i := split + 4*call
		if i >= len(recs) {
			return true, nil
		}
		emit(recs[i])
		return false, nil
	}}
}

// IntervalJoin matches exactly the pairs a nested loop finds, over random
// out-of-order input with bounded delay, for bounds on both sides of zero,
// and stamps each pair with the later of its two times. Timestamps are
// coarse and records often exactly as late as the bound allows, so that
// many pairs sit on the edges of the interval just as the watermark
// reaches them.
func TestIntervalJoinMatchesNestedLoop(t *testing.T) {
	const n, keys, delay = 1200, 5, 3
	r := rand.New(rand.NewPCG(9, 9))
	var lefts []ijLeft
	var rights []ijRight
	for i := range n {
		lefts = append(lefts, ijLeft{Key: r.IntN(keys), ID: i, TS: int64(i/2 + r.IntN(3))})
		rights = append(rights, ijRight{Key: r.IntN(keys), ID: i, TS: int64(i/2 + r.IntN(3))})
	}
	lefts = etShuffle(lefts, func(l ijLeft) int64 { return l.TS }, delay, 3)
	rights = etShuffle(rights, func(r ijRight) int64 { return r.TS }, delay, 4)
	for _, bounds := range [][2]time.Duration{{-2, 2}, {0, 0}, {-5, -1}, {1, 6}, {-60, 90}} {
		lower, upper := bounds[0]*time.Millisecond, bounds[1]*time.Millisecond
		var want []string
		for _, a := range lefts {
			for _, b := range rights {
				if a.Key == b.Key && b.TS >= a.TS+lower.Milliseconds() && b.TS <= a.TS+upper.Milliseconds() {
					want = append(want, ijPair{Key: a.Key, L: a.ID, R: b.ID, TS: max(a.TS, b.TS)}.String())
				}
			}
		}
		for _, batched := range []bool{false, true} {
			for _, p := range parallelisms {
				t.Run(fmt.Sprintf("[%v,%v]/batched=%v/p=%d", lower, upper, batched, p), func(t *testing.T) {
					job := sdk.NewJob("interval-join")
					ls := sdk.FromSource(job, ijSource(lefts, batched), sdk.WithUID("left"),
						sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, func(l ijLeft) int64 { return l.TS })))
					rs := sdk.FromSource(job, ijSource(rights, batched), sdk.WithUID("right"),
						sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, func(r ijRight) int64 { return r.TS })))
					joined := sdk.IntervalJoin(sdk.KeyBy(ls, func(l ijLeft) int { return l.Key }), sdk.KeyBy(rs, func(r ijRight) int { return r.Key }),
						lower, upper, func(a ijLeft, b ijRight) ijPair { return ijPair{Key: a.Key, L: a.ID, R: b.ID} }, sdk.WithUID("join"))
					// Across another exchange, the pair's timestamp is what the
					// join stamped it with.
					stamped := sdk.Process(sdk.KeyBy(joined, func(p ijPair) int { return p.L % 3 }),
						sdk.ProcessFunc[int, ijPair, string](func(ctx sdk.KeyedContext[int], p ijPair, out sdk.Collector[string]) error {
							p.TS = ctx.Timestamp()
							out.Collect(p.String())
							return nil
						}), sdk.WithUID("stamp"))
					out := sdk.Collect[string]()
					sdk.SinkTo(stamped, out)
					runJob(t, job, p)
					sameRecords(t, out.Records(), slices.Clone(want))
				})
			}
		}
	}
}

// Connect two keyed streams and process them with shared state per key:
// here a stream of rules sets a threshold per sensor, and readings above
// their sensor's threshold at their event time raise an alert. Deciding in
// an event-time timer makes the result independent of how the two inputs
// interleave.
func ExampleConnect() {
	type rule struct {
		Sensor string
		At     int64 // ms
		Max    float64
	}
	type reading struct {
		Sensor string
		At     int64
		Temp   float64
	}
	rules := []rule{{"s1", 0, 30}, {"s2", 0, 50}, {"s1", 5000, 25}}
	readings := []reading{{"s1", 1000, 28}, {"s2", 2000, 55}, {"s1", 6000, 28}, {"s2", 7000, 45}}

	job := sdk.NewJob("alerts")
	rs := sdk.FromSource(job, sdk.FromSlice(rules), sdk.WithUID("rules"),
		sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r rule) int64 { return r.At })))
	ts := sdk.FromSource(job, sdk.FromSlice(readings), sdk.WithUID("readings"),
		sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r reading) int64 { return r.At })))
	connected := sdk.Connect(sdk.KeyBy(rs, func(r rule) string { return r.Sensor }),
		sdk.KeyBy(ts, func(r reading) string { return r.Sensor }))
	alerts := sdk.CoProcess(connected, sdk.KeyedCoProcessFunction[string, rule, reading, string](&thresholds[rule, reading]{
		at:    func(r rule) (int64, float64) { return r.At, r.Max },
		value: func(r reading) float64 { return r.Temp },
	}), sdk.WithUID("alerts"))
	sdk.SinkTo(alerts, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// s2 at 2000: 55.0 above 50.0
	// s1 at 6000: 28.0 above 25.0
}

// thresholds keeps each key's threshold changes and its pending readings,
// and judges a reading when the watermark of both inputs passes its time.
type thresholds[R, V any] struct {
	at    func(R) (int64, float64)
	value func(V) float64

	limits  sdk.MapState[int64, float64] // time -> threshold from then on
	pending sdk.MapState[int64, float64] // time -> reading
}

func (f *thresholds[R, V]) Open(ctx sdk.RuntimeContext) error {
	f.limits = sdk.NewMapState[int64, float64](ctx, "limits")
	f.pending = sdk.NewMapState[int64, float64](ctx, "pending")
	return nil
}

func (f *thresholds[R, V]) ProcessElement1(_ sdk.KeyedContext[string], r R, _ sdk.Collector[string]) error {
	at, limit := f.at(r)
	f.limits.Put(at, limit)
	return nil
}

func (f *thresholds[R, V]) ProcessElement2(ctx sdk.KeyedContext[string], v V, _ sdk.Collector[string]) error {
	f.pending.Put(ctx.Timestamp(), f.value(v))
	ctx.TimerService().RegisterEventTimeTimer(ctx.Timestamp())
	return nil
}

func (f *thresholds[R, V]) OnTimer(ctx sdk.KeyedContext[string], ts int64, out sdk.Collector[string]) error {
	v, _ := f.pending.Get(ts)
	f.pending.Remove(ts)
	since, limit := int64(-1), 0.0
	for at, l := range f.limits.All() {
		if at <= ts && at > since {
			since, limit = at, l
		}
	}
	if since >= 0 && v > limit {
		out.Collect(fmt.Sprintf("%s at %d: %.1f above %.1f", ctx.Key(), ts, v, limit))
	}
	return nil
}

// CoProcess with state shared by both inputs: count each user's page views
// and purchases, and emit both counts once, when both inputs have ended
// (a timer at time 0 fires with the final watermark, as neither input has
// event time).
func ExampleCoProcess() {
	type purchase struct {
		User   string
		Amount int
	}
	views := []string{"ann", "bob", "ann", "ann", "cyd"}
	purchases := []purchase{{"ann", 30}, {"cyd", 5}, {"cyd", 7}}
	job := sdk.NewJob("funnel")
	vs := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice(views), sdk.WithUID("views")), func(u string) string { return u })
	ps := sdk.KeyBy(sdk.FromSource(job, sdk.FromSlice(purchases), sdk.WithUID("purchases")), func(p purchase) string { return p.User })
	funnel := sdk.CoProcess(sdk.Connect(vs, ps), sdk.KeyedCoProcessFunction[string, string, purchase, string](&funnelCounts[purchase]{}),
		sdk.WithUID("funnel"))
	out := sdk.Collect[string]()
	sdk.SinkTo(funnel, out)
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	lines := out.Records()
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// ann: 3 views, 1 purchases
	// bob: 1 views, 0 purchases
	// cyd: 1 views, 2 purchases
}

type funnelCounts[P any] struct {
	views, purchases sdk.ValueState[int]
}

func (f *funnelCounts[P]) Open(ctx sdk.RuntimeContext) error {
	f.views = sdk.NewValueState[int](ctx, "views")
	f.purchases = sdk.NewValueState[int](ctx, "purchases")
	return nil
}

func (f *funnelCounts[P]) ProcessElement1(ctx sdk.KeyedContext[string], _ string, _ sdk.Collector[string]) error {
	n, _ := f.views.Value()
	f.views.Update(n + 1)
	ctx.TimerService().RegisterEventTimeTimer(0)
	return nil
}

func (f *funnelCounts[P]) ProcessElement2(ctx sdk.KeyedContext[string], _ P, _ sdk.Collector[string]) error {
	n, _ := f.purchases.Value()
	f.purchases.Update(n + 1)
	ctx.TimerService().RegisterEventTimeTimer(0)
	return nil
}

func (f *funnelCounts[P]) OnTimer(ctx sdk.KeyedContext[string], _ int64, out sdk.Collector[string]) error {
	v, _ := f.views.Value()
	p, _ := f.purchases.Value()
	out.Collect(fmt.Sprintf("%s: %d views, %d purchases", ctx.Key(), v, p))
	return nil
}

// An interval join: each shipment joins the orders of its customer placed
// from 1 hour before it to 10 minutes after it.
func ExampleIntervalJoin() {
	type order struct {
		Customer string
		ID       int
		At       int64 // ms
	}
	type shipment struct {
		Customer string
		Parcel   string
		At       int64
	}
	const minute = int64(60_000)
	orders := []order{{"ann", 1, 0}, {"bob", 2, 5 * minute}, {"ann", 3, 50 * minute}, {"ann", 4, 200 * minute}}
	shipments := []shipment{{"ann", "p1", 30 * minute}, {"bob", "p2", 60 * minute}, {"ann", "p3", 55 * minute}}

	job := sdk.NewJob("shipping")
	os := sdk.FromSource(job, sdk.FromSlice(orders), sdk.WithUID("orders"),
		sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Minute, func(o order) int64 { return o.At })))
	ss := sdk.FromSource(job, sdk.FromSlice(shipments), sdk.WithUID("shipments"),
		sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Minute, func(s shipment) int64 { return s.At })))
	// b.ts in [a.ts-10min, a.ts+1h]: the order at most 1 h before the
	// shipment, or up to 10 min after it.
	joined := sdk.IntervalJoin(sdk.KeyBy(os, func(o order) string { return o.Customer }),
		sdk.KeyBy(ss, func(s shipment) string { return s.Customer }),
		-10*time.Minute, time.Hour,
		func(o order, s shipment) string {
			return fmt.Sprintf("%s: order %d in parcel %s", o.Customer, o.ID, s.Parcel)
		},
		sdk.WithUID("join"))
	out := sdk.Collect[string]()
	sdk.SinkTo(joined, out)
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	lines := out.Records()
	slices.Sort(lines) // the two inputs interleave in no particular order
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// ann: order 1 in parcel p1
	// ann: order 1 in parcel p3
	// ann: order 3 in parcel p3
	// bob: order 2 in parcel p2
}
