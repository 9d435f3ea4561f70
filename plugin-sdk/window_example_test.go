package sdk_test

import (
	"context"
	"fmt"
	"iter"
	"log"
	"slices"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// PageView is the record of the window examples: a user viewed a page at
// an event time in milliseconds.
type PageView struct {
	User string
	Page string
	At   int64
}

// views are some page views, slightly out of order.
var views = []PageView{
	{"ann", "home", 1_000}, {"bob", "home", 1_200}, {"ann", "cart", 2_500},
	{"ann", "pay", 1_900}, {"bob", "help", 4_100}, {"ann", "home", 9_000},
}

// pageViews is a source of views with event time, expecting records up to
// a second late.
func pageViews(job *sdk.Job) *sdk.Stream[PageView] {
	return sdk.FromSource(job, sdk.FromSlice(views), sdk.WithUID("views"),
		sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Second, func(v PageView) int64 { return v.At })))
}

func byUser(v PageView) string { return v.User }

func runExample(job *sdk.Job) {
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
}

// Windows of three views per user: global windows with a count trigger.
// Event-time windows are in the other examples.
func ExampleWindowBy() {
	job := sdk.NewJob("views-by-three")
	ws := sdk.WindowBy(sdk.KeyBy(pageViews(job), byUser), sdk.GlobalWindows(),
		sdk.WithTrigger(sdk.PurgingTrigger(sdk.CountTrigger(3))))
	pages := sdk.WindowProcess(ws, sdk.ProcessWindowFunc[string, PageView, string](
		func(ctx sdk.WindowContext[string], vs iter.Seq[PageView], out sdk.Collector[string]) error {
			var pages []string
			for v := range vs {
				pages = append(pages, v.Page)
			}
			out.Collect(fmt.Sprintf("%s viewed %v", ctx.Key(), pages))
			return nil
		}), sdk.WithUID("threes"))
	sdk.SinkTo(pages, sdk.Print[string]())
	runExample(job)
	// Output:
	// ann viewed [home cart pay]
}

// Views per user and 5-second window. Windows fire when the watermark
// passes their end; the allowed lateness keeps them a minute longer, so
// that a view up to a minute late would fire its window again, updated.
func ExampleWindowReduce() {
	type count struct {
		User  string
		Views int
	}
	job := sdk.NewJob("views-per-window")
	counts := sdk.Map(pageViews(job), func(v PageView) count { return count{v.User, 1} })
	ws := sdk.WindowBy(sdk.KeyBy(counts, func(c count) string { return c.User }),
		sdk.TumblingEventTimeWindows(5*time.Second), sdk.AllowedLateness(time.Minute))
	totals := sdk.WindowReduce(ws, func(a, b count) count { return count{a.User, a.Views + b.Views} }, sdk.WithUID("totals"))
	sdk.SinkTo(sdk.Map(totals, func(r sdk.Windowed[string, count]) string {
		return fmt.Sprintf("%s %v: %d views", r.Key, r.Window, r.Value.Views)
	}), sdk.Print[string]())
	runExample(job)
	// Output:
	// ann [0, 5000): 3 views
	// bob [0, 5000): 2 views
	// ann [5000, 10000): 1 views
}

// distinctPages counts the distinct pages of a window.
type distinctPages struct{}

func (distinctPages) CreateAccumulator() map[string]bool { return map[string]bool{} }
func (distinctPages) Add(acc map[string]bool, v PageView) map[string]bool {
	acc[v.Page] = true
	return acc
}
func (distinctPages) Result(acc map[string]bool) int { return len(acc) }
func (distinctPages) Merge(a, b map[string]bool) map[string]bool {
	for p := range b {
		a[p] = true
	}
	return a
}

// Distinct pages per user session: a session ends after two seconds
// without a view.
func ExampleWindowAggregate() {
	job := sdk.NewJob("pages-per-session")
	ws := sdk.WindowBy(sdk.KeyBy(pageViews(job), byUser), sdk.EventTimeSessionWindows(2*time.Second))
	pages := sdk.WindowAggregate(ws, sdk.AggregateFunction[PageView, map[string]bool, int](distinctPages{}), sdk.WithUID("pages"))
	sdk.SinkTo(pages, sdk.Print[sdk.Windowed[string, int]]())
	runExample(job)
	// Output:
	// bob [1200, 3200): 1
	// ann [1000, 4500): 3
	// bob [4100, 6100): 1
	// ann [9000, 11000): 1
}

// The pages of each user's sessions, in time order.
func ExampleWindowProcess() {
	job := sdk.NewJob("sessions")
	ws := sdk.WindowBy(sdk.KeyBy(pageViews(job), byUser), sdk.EventTimeSessionWindows(2*time.Second))
	paths := sdk.WindowProcess(ws, sdk.ProcessWindowFunc[string, PageView, string](
		func(ctx sdk.WindowContext[string], vs iter.Seq[PageView], out sdk.Collector[string]) error {
			sorted := slices.SortedFunc(vs, func(a, b PageView) int { return int(a.At - b.At) })
			var path []string
			for _, v := range sorted {
				path = append(path, v.Page)
			}
			w := ctx.Window()
			out.Collect(fmt.Sprintf("%s from %d to %d: %v", ctx.Key(), w.Start, w.End, path))
			return nil
		}), sdk.WithUID("paths"))
	sdk.SinkTo(paths, sdk.Print[string]())
	runExample(job)
	// Output:
	// bob from 1200 to 3200: [home]
	// ann from 1000 to 4500: [home pay cart]
	// bob from 4100 to 6100: [help]
	// ann from 9000 to 11000: [home]
}

// Purchase is the record of the join example.
type Purchase struct {
	User   string
	Amount int
	At     int64
}

// Purchases joined with the page views of the same user in the same
// 5-second window.
func ExampleWindowJoin() {
	job := sdk.NewJob("views-and-purchases")
	purchases := sdk.FromSource(job, sdk.FromSlice([]Purchase{{"ann", 30, 2_600}, {"bob", 5, 6_000}}), sdk.WithUID("purchases"),
		sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Second, func(p Purchase) int64 { return p.At })))
	joined := sdk.WindowJoin(
		sdk.KeyBy(purchases, func(p Purchase) string { return p.User }),
		sdk.KeyBy(pageViews(job), byUser),
		sdk.TumblingEventTimeWindows(5*time.Second),
		func(p Purchase, v PageView) string {
			return fmt.Sprintf("%s paid %d, viewed %s", p.User, p.Amount, v.Page)
		},
		sdk.WithUID("join"))
	sdk.SinkTo(joined, sdk.Print[string]())
	runExample(job)
	// Output:
	// ann paid 30, viewed home
	// ann paid 30, viewed cart
	// ann paid 30, viewed pay
}
