package nexmark

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// Query is one of the benchmark's queries, by name, ready to be added to a
// job whatever the type of its results.
type Query struct {
	// Name is the query's name: q0, q1, ...
	Name string
	// Title is what the query computes, in a few words.
	Title string
	add   func(events *sdk.Stream[Event], out Output)
}

// Output says where AddTo sends a query's results.
type Output struct {
	// Dir, when set, is the directory of a FileSink of the results, one
	// per line in their stable text form (their String method).
	Dir string
	// Count, when Dir is empty, counts the results, which are dropped.
	Count *atomic.Int64
	// Report, when Dir is empty, is called by each sink subtask at the end
	// of its input with the number of results it dropped and the time
	// since it opened.
	Report func(subtask int, results int64, elapsed time.Duration)
}

// AddTo adds the query over events, and a sink of its results (UID
// "results"), to the events' job.
func (q Query) AddTo(events *sdk.Stream[Event], out Output) { q.add(events, out) }

// query adapts a typed query builder to Query.
func query[T fmt.Stringer](name, title string, build func(*sdk.Stream[Event]) *sdk.Stream[T]) Query {
	return Query{Name: name, Title: title, add: func(events *sdk.Stream[Event], out Output) {
		results := build(events)
		if out.Dir != "" {
			sdk.SinkTo(results, sdk.FileSink(out.Dir, T.String), sdk.WithUID("results"))
			return
		}
		sdk.SinkTo(results, sdk.Sink[T](discard[T]{count: out.Count, report: out.Report}), sdk.WithUID("results"))
	}}
}

// Queries returns the queries Eddy runs, in order.
func Queries() []Query { return slices.Clone(queries) }

var queries = []Query{
	query("q0", "pass-through of the bids", Q0),
	query("q1", "bid prices in euros", Q1),
	query("q2", "bids on auctions whose id is a multiple of 123", Q2),
	query("q3", "sellers in OR, ID or CA of category-10 auctions (a regular join)", Q3),
	query("q4", "average winning price per category (join, then aggregate)", Q4),
	query("q5", "hot items: the auctions with the most bids per sliding window", Q5),
	query("q7", "highest bids per tumbling window", Q7),
	query("q8", "new users who created an auction in their first window (window join)", Q8),
	query("q11", "bids per user session (session windows)", Q11),
}

// Lookup returns the query called name.
func Lookup(name string) (Query, bool) {
	for _, q := range queries {
		if q.Name == name {
			return q, true
		}
	}
	return Query{}, false
}

// Names returns the names of the queries.
func Names() []string {
	out := make([]string, len(queries))
	for i, q := range queries {
		out[i] = q.Name
	}
	return out
}

// discard is a sink that drops records, counting them.
type discard[T any] struct {
	count  *atomic.Int64
	report func(subtask int, results int64, elapsed time.Duration)
}

func (d discard[T]) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[T], error) {
	return &discardWriter[T]{discard: d, subtask: sc.Subtask(), start: time.Now()}, nil
}

type discardWriter[T any] struct {
	discard[T]
	subtask int
	start   time.Time
	n       int64 // since the last flush
	total   int64
}

func (w *discardWriter[T]) Write(context.Context, T) error { w.n++; return nil }

func (w *discardWriter[T]) Flush(context.Context) error {
	if w.count != nil {
		w.count.Add(w.n)
	}
	w.total += w.n
	w.n = 0
	return nil
}

func (w *discardWriter[T]) Close(ctx context.Context) error {
	err := w.Flush(ctx)
	if w.report != nil {
		w.report(w.subtask, w.total, time.Since(w.start))
	}
	return err
}
