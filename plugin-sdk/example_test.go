package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// WordCount is the record of the word count examples.
type WordCount struct {
	Word  string
	Count int
}

func (c WordCount) String() string { return fmt.Sprintf("%s=%d", c.Word, c.Count) }

// A complete job: count words, printing the running count of each.
func ExampleNewJob() {
	job := sdk.NewJob("wordcount")
	lines := sdk.FromSource(job, sdk.FromSlice([]string{"to be or", "not to be"}), sdk.WithUID("lines"))
	words := sdk.FlatMap(lines, func(line string, out sdk.Collector[WordCount]) {
		for _, w := range strings.Fields(line) {
			out.Collect(WordCount{Word: w, Count: 1})
		}
	}, sdk.WithUID("split"))
	counts := sdk.Reduce(sdk.KeyBy(words, func(c WordCount) string { return c.Word }),
		func(acc, c WordCount) WordCount { return WordCount{Word: acc.Word, Count: acc.Count + c.Count} },
		sdk.WithUID("count"))
	sdk.SinkTo(counts, sdk.Print[WordCount](), sdk.WithUID("print"))

	// A job binary ends main with sdk.Main(job); here the job runs in this
	// process with one subtask per operator.
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// to=1
	// be=1
	// or=1
	// not=1
	// to=2
	// be=2
}

func ExampleFromSource() {
	job := sdk.NewJob("numbers")
	nums := sdk.FromSource(job, sdk.Sequence(1, 3), sdk.WithUID("numbers"))
	sdk.SinkTo(nums, sdk.Print[int64]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1
	// 2
	// 3
}

func ExampleMap() {
	job := sdk.NewJob("squares")
	nums := sdk.FromSource(job, sdk.Sequence(1, 4), sdk.WithUID("source"))
	squares := sdk.Map(nums, func(x int64) string { return fmt.Sprintf("%d² = %d", x, x*x) })
	sdk.SinkTo(squares, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1² = 1
	// 2² = 4
	// 3² = 9
	// 4² = 16
}

func ExampleFlatMap() {
	job := sdk.NewJob("words")
	lines := sdk.FromSource(job, sdk.FromSlice([]string{"a quick fox", "", "jumps"}), sdk.WithUID("source"))
	words := sdk.FlatMap(lines, func(line string, out sdk.Collector[string]) {
		for _, w := range strings.Fields(line) {
			out.Collect(w)
		}
	})
	sdk.SinkTo(words, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// a
	// quick
	// fox
	// jumps
}

func ExampleFilter() {
	job := sdk.NewJob("even")
	nums := sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("source"))
	even := sdk.Filter(nums, func(x int64) bool { return x%2 == 0 })
	sdk.SinkTo(even, sdk.Print[int64]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2
	// 4
	// 6
	// 8
	// 10
}

// Sale is a record of the keyed examples.
type Sale struct {
	Shop   string
	Amount int
}

func ExampleKeyBy() {
	job := sdk.NewJob("sales")
	sales := sdk.FromSource(job, sdk.FromSlice([]Sale{{"north", 5}, {"south", 3}, {"north", 2}}), sdk.WithUID("source"))
	byShop := sdk.KeyBy(sales, func(s Sale) string { return s.Shop })
	// Every record of one shop reaches the same instance of the next
	// operator, which keeps that shop's state.
	totals := sdk.Reduce(byShop, func(acc, s Sale) Sale { return Sale{acc.Shop, acc.Amount + s.Amount} },
		sdk.WithUID("totals"))
	sdk.SinkTo(totals, sdk.Print[Sale]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {north 5}
	// {south 3}
	// {north 7}
}

func ExampleReduce() {
	job := sdk.NewJob("running-max")
	nums := sdk.FromSource(job, sdk.FromSlice([]int{3, 1, 4, 1, 5, 9, 2, 6}), sdk.WithUID("source"))
	byParity := sdk.KeyBy(nums, func(x int) bool { return x%2 == 0 })
	// Reduce emits the running reduction of the key after every record.
	maxima := sdk.Reduce(byParity, func(acc, x int) int { return max(acc, x) }, sdk.WithUID("max"))
	sdk.SinkTo(maxima, sdk.Print[int]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 3
	// 3
	// 4
	// 3
	// 5
	// 9
	// 4
	// 6
}

func ExampleProcess() {
	job := sdk.NewJob("first-seen")
	visits := sdk.FromSource(job, sdk.FromSlice([]string{"ann", "bob", "ann", "cid", "bob", "ann"}), sdk.WithUID("source"))
	// A process function with no state of its own can be a ProcessFunc;
	// this one numbers each user's visits with the key in the context.
	numbered := sdk.Process(sdk.KeyBy(visits, func(u string) string { return u }),
		sdk.ProcessFunc[string, string, string](func(ctx sdk.KeyedContext[string], _ string, out sdk.Collector[string]) error {
			out.Collect("hello " + ctx.Key())
			return nil
		}), sdk.WithUID("greet"))
	sdk.SinkTo(numbered, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello ann
	// hello bob
	// hello ann
	// hello cid
	// hello bob
	// hello ann
}

func ExampleUnion() {
	job := sdk.NewJob("union")
	low := sdk.FromSource(job, sdk.Sequence(1, 3), sdk.WithUID("low"))
	high := sdk.FromSource(job, sdk.Sequence(100, 102), sdk.WithUID("high"))
	out := sdk.Collect[int64]()
	sdk.SinkTo(sdk.Union(low, high), out)
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// The inputs of a union interleave in no particular order.
	got := out.Records()
	slices.Sort(got)
	fmt.Println(got)
	// Output:
	// [1 2 3 100 101 102]
}

func ExampleRebalance() {
	job := sdk.NewJob("rebalance")
	nums := sdk.FromSource(job, sdk.Sequence(1, 8), sdk.WithParallelism(1), sdk.WithUID("source"))
	// Four sink subtasks take the records of the one source round robin.
	// Print starts each line with the number of the subtask that wrote it.
	sdk.SinkTo(sdk.Rebalance(nums), sdk.Print[int64](), sdk.WithParallelism(4))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Unordered output:
	// 1> 1
	// 2> 2
	// 3> 3
	// 4> 4
	// 1> 5
	// 2> 6
	// 3> 7
	// 4> 8
}

func ExampleBroadcast() {
	job := sdk.NewJob("broadcast")
	rules := sdk.FromSource(job, sdk.FromSlice([]string{"rule-a", "rule-b"}), sdk.WithParallelism(1), sdk.WithUID("source"))
	// Every sink subtask receives every rule.
	sdk.SinkTo(sdk.Broadcast(rules), sdk.Print[string](), sdk.WithParallelism(3))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Unordered output:
	// 1> rule-a
	// 1> rule-b
	// 2> rule-a
	// 2> rule-b
	// 3> rule-a
	// 3> rule-b
}

func ExampleSinkTo() {
	job := sdk.NewJob("sink")
	nums := sdk.FromSource(job, sdk.Sequence(1, 3), sdk.WithUID("source"))
	// A stream may go to several sinks.
	all := sdk.Collect[int64]()
	sdk.SinkTo(nums, all, sdk.WithUID("collect"))
	sdk.SinkTo(nums, sdk.Print[int64](), sdk.WithUID("print"))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("collected", all.Records())
	// Output:
	// 1
	// 2
	// 3
	// collected [1 2 3]
}

// dedup emits each record the first time its key is seen.
type dedup struct {
	seen sdk.ValueState[bool]
}

func (d *dedup) Open(ctx sdk.RuntimeContext) error {
	d.seen = sdk.NewValueState[bool](ctx, "seen")
	return nil
}

func (d *dedup) ProcessElement(_ sdk.KeyedContext[string], id string, out sdk.Collector[string]) error {
	if _, ok := d.seen.Value(); ok {
		return nil
	}
	d.seen.Update(true)
	out.Collect(id)
	return nil
}

func ExampleNewValueState() {
	job := sdk.NewJob("dedup")
	ids := sdk.FromSource(job, sdk.FromSlice([]string{"a", "b", "a", "c", "b", "d"}), sdk.WithUID("source"))
	unique := sdk.Process(sdk.KeyBy(ids, func(id string) string { return id }),
		sdk.KeyedProcessFunction[string, string, string](&dedup{}), sdk.WithUID("dedup"))
	sdk.SinkTo(unique, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// a
	// b
	// c
	// d
}

// Order is a record of the state examples.
type Order struct {
	User string
	Item string
}

// lastThree emits, after every order, the user's last three items.
type lastThree struct {
	items sdk.ListState[string]
}

func (f *lastThree) Open(ctx sdk.RuntimeContext) error {
	f.items = sdk.NewListState[string](ctx, "items")
	return nil
}

func (f *lastThree) ProcessElement(ctx sdk.KeyedContext[string], o Order, out sdk.Collector[string]) error {
	f.items.Add(o.Item)
	if items := f.items.Get(); len(items) > 3 {
		f.items.Update(items[len(items)-3:])
	}
	out.Collect(fmt.Sprintf("%s: %v", ctx.Key(), f.items.Get()))
	return nil
}

func ExampleNewListState() {
	job := sdk.NewJob("recent")
	orders := sdk.FromSource(job, sdk.FromSlice([]Order{
		{"ann", "tea"}, {"ann", "cup"}, {"bob", "pen"}, {"ann", "pot"}, {"ann", "jam"},
	}), sdk.WithUID("source"))
	recent := sdk.Process(sdk.KeyBy(orders, func(o Order) string { return o.User }),
		sdk.KeyedProcessFunction[string, Order, string](&lastThree{}), sdk.WithUID("recent"))
	sdk.SinkTo(recent, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// ann: [tea]
	// ann: [tea cup]
	// bob: [pen]
	// ann: [tea cup pot]
	// ann: [cup pot jam]
}

// itemCounts counts, per user, how often each item was ordered.
type itemCounts struct {
	counts sdk.MapState[string, int]
}

func (f *itemCounts) Open(ctx sdk.RuntimeContext) error {
	f.counts = sdk.NewMapState[string, int](ctx, "counts")
	return nil
}

func (f *itemCounts) ProcessElement(ctx sdk.KeyedContext[string], o Order, out sdk.Collector[string]) error {
	n, _ := f.counts.Get(o.Item)
	f.counts.Put(o.Item, n+1)
	out.Collect(fmt.Sprintf("%s: %d distinct, %s x%d", ctx.Key(), f.counts.Len(), o.Item, n+1))
	return nil
}

func ExampleNewMapState() {
	job := sdk.NewJob("items")
	orders := sdk.FromSource(job, sdk.FromSlice([]Order{{"ann", "tea"}, {"ann", "cup"}, {"ann", "tea"}, {"bob", "tea"}}), sdk.WithUID("source"))
	counts := sdk.Process(sdk.KeyBy(orders, func(o Order) string { return o.User }),
		sdk.KeyedProcessFunction[string, Order, string](&itemCounts{}), sdk.WithUID("items"))
	sdk.SinkTo(counts, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// ann: 1 distinct, tea x1
	// ann: 2 distinct, cup x1
	// ann: 2 distinct, tea x2
	// bob: 1 distinct, tea x1
}

// spend keeps each user's total spend and reports when it crosses 100.
type spend struct {
	total sdk.ReducingState[int]
}

func (f *spend) Open(ctx sdk.RuntimeContext) error {
	f.total = sdk.NewReducingState(ctx, "total", func(a, b int) int { return a + b })
	return nil
}

func (f *spend) ProcessElement(ctx sdk.KeyedContext[string], s Sale, out sdk.Collector[string]) error {
	before, _ := f.total.Get()
	f.total.Add(s.Amount)
	if after, _ := f.total.Get(); before < 100 && after >= 100 {
		out.Collect(fmt.Sprintf("%s reached %d", ctx.Key(), after))
	}
	return nil
}

func ExampleNewReducingState() {
	job := sdk.NewJob("big-spenders")
	sales := sdk.FromSource(job, sdk.FromSlice([]Sale{{"ann", 60}, {"bob", 20}, {"ann", 50}, {"bob", 30}, {"ann", 10}}), sdk.WithUID("source"))
	alerts := sdk.Process(sdk.KeyBy(sales, func(s Sale) string { return s.Shop }),
		sdk.KeyedProcessFunction[string, Sale, string](&spend{}), sdk.WithUID("spend"))
	sdk.SinkTo(alerts, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// ann reached 110
}

func ExampleSequence() {
	job := sdk.NewJob("sequence")
	// Both ends are included, as in Flink's fromSequence.
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(-2, 2), sdk.WithUID("source")), sdk.Print[int64]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// -2
	// -1
	// 0
	// 1
	// 2
}

func ExampleGenerate() {
	job := sdk.NewJob("generate")
	// gen depends on i alone, so a restored job makes the same records.
	sensors := sdk.Generate(4, func(i int64) string { return fmt.Sprintf("sensor-%d reads %d", i%2, i*10) })
	sdk.SinkTo(sdk.FromSource(job, sensors, sdk.WithUID("source")), sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// sensor-0 reads 0
	// sensor-1 reads 10
	// sensor-0 reads 20
	// sensor-1 reads 30
}

func ExampleRatePerSecond() {
	job := sdk.NewJob("throttled")
	// At most 200 records a second over all subtasks: these 10 take about
	// 50 milliseconds. A negative count would generate records forever.
	ticks := sdk.Generate(10, func(i int64) int64 { return i }, sdk.RatePerSecond(200))
	out := sdk.Collect[int64]()
	sdk.SinkTo(sdk.FromSource(job, ticks, sdk.WithUID("source")), out)
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Records())
	// Output:
	// [0 1 2 3 4 5 6 7 8 9]
}

func ExampleFileLines() {
	dir, err := os.MkdirTemp("", "eddy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "1.txt"), []byte("first\nsecond\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "2.txt"), []byte("third\r\nlast, with no newline"), 0o644)

	job := sdk.NewJob("lines")
	// A glob pattern: every matching file is one split.
	lines := sdk.FromSource(job, sdk.FileLines(filepath.Join(dir, "*.txt")), sdk.WithUID("lines"))
	sdk.SinkTo(lines, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// first
	// second
	// third
	// last, with no newline
}

func ExampleFromSlice() {
	job := sdk.NewJob("slice")
	sdk.SinkTo(sdk.FromSource(job, sdk.FromSlice([]string{"x", "y"}), sdk.WithUID("source")), sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// x
	// y
}

func ExamplePrint() {
	job := sdk.NewJob("print")
	nums := sdk.FromSource(job, sdk.FromSlice([]Sale{{"north", 1}}), sdk.WithUID("source"))
	// fmt's %v: a type with a String method prints with it.
	sdk.SinkTo(nums, sdk.Print[Sale]())
	sdk.SinkTo(sdk.Map(nums, func(s Sale) string { return s.Shop + " sold " + fmt.Sprint(s.Amount) }),
		sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Unordered output:
	// {north 1}
	// north sold 1
}

func ExamplePrintTo() {
	var b strings.Builder
	job := sdk.NewJob("print-to")
	nums := sdk.FromSource(job, sdk.Sequence(1, 4), sdk.WithUID("source"))
	sdk.SinkTo(nums, sdk.PrintTo[int64](&b), sdk.WithParallelism(2))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(b.String(), "> ", ">"))
	slices.Sort(lines)
	fmt.Println(lines)
	// Output:
	// [1>1 1>3 2>2 2>4]
}

func ExampleFileSink() {
	dir, err := os.MkdirTemp("", "eddy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	job := sdk.NewJob("to-files")
	sales := sdk.FromSource(job, sdk.FromSlice([]Sale{{"north", 5}, {"south", 3}}), sdk.WithUID("source"))
	sdk.SinkTo(sales, sdk.FileSink(dir, func(s Sale) string { return fmt.Sprintf("%s,%d", s.Shop, s.Amount) }))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// One file per sink subtask.
	b, err := os.ReadFile(filepath.Join(dir, "part-0"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// north,5
	// south,3
}

func ExampleExactlyOnceFileSink() {
	dir, err := os.MkdirTemp("", "eddy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	job := sdk.NewJob("to-files-exactly-once")
	sales := sdk.FromSource(job, sdk.FromSlice([]Sale{{"north", 5}, {"south", 3}}), sdk.WithUID("sales"))
	sdk.SinkTo(sales, sdk.ExactlyOnceFileSink(dir, func(s Sale) string { return fmt.Sprintf("%s,%d", s.Shop, s.Amount) }),
		sdk.WithUID("files"))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Without checkpointing, each sink subtask publishes one part at the end
	// of its input; with it, one per checkpoint.
	b, err := os.ReadFile(filepath.Join(dir, "part-0-0-0"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// north,5
	// south,3
}

func ExampleJob_EnableCheckpointing() {
	job := sdk.NewJob("checkpointed")
	job.EnableCheckpointing(10*time.Second, sdk.CheckpointTimeout(time.Minute), sdk.RetainCheckpoints(3))
	job.SetRestartStrategy(sdk.FixedDelay(5, 2*time.Second))
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("numbers")), sdk.Print[int64]())
	b, err := sdk.Describe(job, 1)
	if err != nil {
		log.Fatal(err)
	}
	var g struct {
		Checkpointing, Restart map[string]any
	}
	if err := json.Unmarshal(b, &g); err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Checkpointing)
	fmt.Println(g.Restart)
	// Output:
	// map[intervalMs:10000 retain:3 timeoutMs:60000]
	// map[delayMs:2000 kind:KIND_FIXED_DELAY maxAttempts:5]
}

func ExampleCollect() {
	job := sdk.NewJob("collect")
	out := sdk.Collect[int64]()
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(1, 100), sdk.WithUID("source")), out)
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(4)); err != nil {
		log.Fatal(err)
	}
	// Four subtasks collected in no particular order.
	got := out.Records()
	slices.Sort(got)
	fmt.Println(len(got), got[0], got[99])
	// Output:
	// 100 1 100
}

func ExampleRunLocal() {
	job := sdk.NewJob("fails")
	nums := sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("source"))
	checked := sdk.Map(nums, func(x int64) int64 {
		if x == 7 {
			panic("seven is not allowed")
		}
		return x
	})
	sdk.SinkTo(checked, sdk.Collect[int64]())
	// RunLocal returns when the job ends; a failing task fails the job.
	err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(2))
	fmt.Println(strings.Contains(err.Error(), "panic: seven is not allowed"))
	// Output:
	// true
}

func ExampleDescribe() {
	job := sdk.NewJob("described")
	nums := sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("src"))
	odd := sdk.Filter(nums, func(x int64) bool { return x%2 == 1 }, sdk.WithName("odd"))
	sums := sdk.Reduce(sdk.KeyBy(odd, func(x int64) int64 { return x % 3 }),
		func(a, b int64) int64 { return a + b }, sdk.WithUID("sum"))
	sdk.SinkTo(sums, sdk.Print[int64](), sdk.WithUID("out"), sdk.WithParallelism(1))

	b, err := sdk.Describe(job, 4)
	if err != nil {
		log.Fatal(err)
	}
	var g struct {
		Vertices []struct {
			Name, Kind  string
			Parallelism int
			Chain       int
		}
	}
	if err := json.Unmarshal(b, &g); err != nil {
		log.Fatal(err)
	}
	for _, v := range g.Vertices {
		fmt.Printf("%-4s %-6s parallelism %d, chain %d\n", v.Name, v.Kind, v.Parallelism, v.Chain)
	}

	// Without a UID, a stateful operator is refused.
	job = sdk.NewJob("refused")
	keyed := sdk.KeyBy(sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("source")), func(x int64) int64 { return x })
	sdk.SinkTo(sdk.Reduce(keyed, func(a, b int64) int64 { return a + b }), sdk.Print[int64]())
	_, err = sdk.Describe(job, 1)
	fmt.Println(err)
	// Output:
	// src  source parallelism 4, chain 0
	// odd  filter parallelism 4, chain 0
	// sum  reduce parallelism 4, chain 1
	// out  sink   parallelism 1, chain 2
	// operator reduce-1 (reduce) keeps state and needs a stable uid: add sdk.WithUID(...)
}

func ExampleWithUID() {
	job := sdk.NewJob("uids")
	nums := sdk.FromSource(job, sdk.Sequence(1, 3), sdk.WithUID("numbers"))
	// Keyed state is stored under the operator's UID: keep it stable when
	// the code changes, so that a savepoint restores into the new version.
	sums := sdk.Reduce(sdk.KeyBy(nums, func(int64) string { return "all" }),
		func(a, b int64) int64 { return a + b }, sdk.WithUID("total"))
	sdk.SinkTo(sums, sdk.Print[int64](), sdk.WithUID("print"))
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1
	// 3
	// 6
}

func ExampleJob_SetMaxParallelism() {
	// The max parallelism is the number of key groups: no operator can run
	// more instances, and it must not change across savepoints.
	job := sdk.NewJob("wide").SetMaxParallelism(4)
	nums := sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithParallelism(2), sdk.WithUID("source"))
	keyed := sdk.KeyBy(nums, func(x int64) int64 { return x })
	sdk.SinkTo(sdk.Reduce(keyed, func(a, b int64) int64 { return a + b }, sdk.WithUID("sum")), sdk.Collect[int64]())
	_, err := sdk.Describe(job, 8)
	fmt.Println(err)
	// Output:
	// operator "sum": parallelism 8 exceeds max parallelism 4
}

func ExampleLocalParallelism() {
	job := sdk.NewJob("parallel")
	out := sdk.Collect[int64]()
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(1, 1000), sdk.WithUID("source")), out)
	// Every operator without WithParallelism runs 3 instances.
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(3)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(out.Records()))
	// Output:
	// 1000
}

func ExampleMain() {
	job := sdk.NewJob("my-job")
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("source")), sdk.Print[int64]())
	// Main runs the job as the process was asked to (locally, described
	// to the eddy CLI, or as a worker's plugin) and exits.
	sdk.Main(job)
}
