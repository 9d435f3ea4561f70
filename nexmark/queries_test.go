package nexmark_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eddy-streams/eddy/nexmark"
	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// The query tests run every query on generated events at parallelism 1
// and 4 and compare its results with a reference computed here, over the
// same events made by the generator, with plain maps and sorts and none of
// the engine's code. Results are compared as multisets, except Q4's, which
// are updates: there the final value per key is compared (see TestQ4).

// queryEvents is how many events the query tests generate.
const queryEvents = 50_000

// runQuery runs query over the events of cfg at parallelism p and returns
// its results.
func runQuery[T any](t *testing.T, cfg nexmark.Config, p int, query func(*sdk.Stream[nexmark.Event]) *sdk.Stream[T]) []T {
	t.Helper()
	job := sdk.NewJob("query")
	out := sdk.Collect[T]()
	sdk.SinkTo(query(nexmark.Events(job, cfg)), out, sdk.WithUID("out"))
	runJob(t, job, p)
	return out.Records()
}

// sameResults fails unless got and want hold the same results, each as
// often, compared by their %v forms.
func sameResults[T any](t *testing.T, got, want []T) {
	t.Helper()
	g, w := texts(got), texts(want)
	if len(want) == 0 {
		t.Fatal("the reference has no results: the test proves nothing")
	}
	if slices.Equal(g, w) {
		return
	}
	if len(g) != len(w) {
		t.Errorf("got %d results, want %d", len(g), len(w))
	}
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			t.Fatalf("results differ at %d (sorted): got %s, want %s", i, g[i], w[i])
		}
	}
	t.FailNow()
}

func texts[T any](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprint(v)
	}
	slices.Sort(out)
	return out
}

// eachParallelism runs f as a subtest at every parallelism of the tests.
func eachParallelism(t *testing.T, f func(t *testing.T, p int)) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) { f(t, p) })
	}
}

func bidsOf(events []nexmark.Event) []nexmark.Bid {
	var out []nexmark.Bid
	for _, e := range events {
		if e.Kind == nexmark.KindBid {
			out = append(out, e.Bid)
		}
	}
	return out
}

func TestQ0(t *testing.T) {
	cfg := testConfig(queryEvents)
	want := bidsOf(generate(t, cfg))
	eachParallelism(t, func(t *testing.T, p int) {
		sameResults(t, runQuery(t, cfg, p, nexmark.Q0), want)
	})
}

func TestQ1(t *testing.T) {
	cfg := testConfig(queryEvents)
	var want []nexmark.Bid
	for _, b := range bidsOf(generate(t, cfg)) {
		b.Price = b.Price * 908 / 1000
		want = append(want, b)
	}
	eachParallelism(t, func(t *testing.T, p int) {
		sameResults(t, runQuery(t, cfg, p, nexmark.Q1), want)
	})
}

func TestQ2(t *testing.T) {
	cfg := testConfig(queryEvents)
	var want []nexmark.Q2Result
	for _, b := range bidsOf(generate(t, cfg)) {
		if b.Auction%123 == 0 {
			want = append(want, nexmark.Q2Result{Auction: b.Auction, Price: b.Price})
		}
	}
	eachParallelism(t, func(t *testing.T, p int) {
		sameResults(t, runQuery(t, cfg, p, nexmark.Q2), want)
	})
}

// rates are the event rates the join tests run at: the tests' 1000 events
// per second, and nexmark's 10 million, at which thousands of events share
// each millisecond, so that bids often come before an auction of the same
// time.
var rates = []float64{1000, nexmark.DefaultEventRate}

func TestQ3(t *testing.T) {
	for _, rate := range rates {
		cfg := testConfig(queryEvents)
		cfg.EventRate = rate
		events := generate(t, cfg)
		people := map[int64]nexmark.Person{}
		for _, e := range events {
			if e.Kind == nexmark.KindPerson && (e.Person.State == "OR" || e.Person.State == "ID" || e.Person.State == "CA") {
				people[e.Person.ID] = e.Person
			}
		}
		var want []nexmark.Q3Result
		for _, e := range events {
			if e.Kind != nexmark.KindAuction || e.Auction.Category != 10 {
				continue
			}
			if p, ok := people[e.Auction.Seller]; ok {
				want = append(want, nexmark.Q3Result{Name: p.Name, City: p.City, State: p.State, ID: e.Auction.ID})
			}
		}
		t.Run(fmt.Sprintf("rate=%g", rate), func(t *testing.T) {
			eachParallelism(t, func(t *testing.T, p int) {
				sameResults(t, runQuery(t, cfg, p, nexmark.Q3), want)
			})
		})
	}
}

// q4Reference returns the winning price of every auction with a bid from
// its start to its expiry, both included.
func q4Reference(events []nexmark.Event) []nexmark.AuctionMax {
	auctions := map[int64]nexmark.Auction{}
	for _, e := range events {
		if e.Kind == nexmark.KindAuction {
			auctions[e.Auction.ID] = e.Auction
		}
	}
	best := map[int64]int64{}
	for _, b := range bidsOf(events) {
		a, ok := auctions[b.Auction]
		if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
			continue
		}
		if p, ok := best[a.ID]; !ok || b.Price > p {
			best[a.ID] = b.Price
		}
	}
	var out []nexmark.AuctionMax
	for id, p := range best {
		out = append(out, nexmark.AuctionMax{Auction: id, Category: auctions[id].Category, Price: p})
	}
	return out
}

// TestQ4 compares the winning price of every auction, and the final
// average per category: Q4 emits a running average per category after
// every auction that closes, the last of which (the one with the highest
// count) is the answer.
func TestQ4(t *testing.T) {
	for _, rate := range rates {
		for _, group := range []int64{1, 37} {
			cfg := testConfig(queryEvents)
			cfg.EventRate = rate
			cfg.OutOfOrderGroupSize = group
			winners := q4Reference(generate(t, cfg))
			final := map[int64]nexmark.Q4Result{}
			for _, w := range winners {
				r := final[w.Category]
				r.Category = w.Category
				r.Sum += w.Price
				r.Count++
				r.Average = r.Sum / r.Count
				final[w.Category] = r
			}
			t.Run(fmt.Sprintf("rate=%g/group=%d", rate, group), func(t *testing.T) {
				eachParallelism(t, func(t *testing.T, p int) {
					sameResults(t, runQuery(t, cfg, p, nexmark.Q4Winners), winners)
					got := runQuery(t, cfg, p, nexmark.Q4)
					if len(got) != len(winners) {
						t.Errorf("got %d updates, want one per auction with bids, %d", len(got), len(winners))
					}
					last := map[int64]nexmark.Q4Result{}
					for _, r := range got {
						if r.Count > last[r.Category].Count {
							last[r.Category] = r
						}
					}
					if len(last) != len(final) {
						t.Errorf("got averages for %d categories, want %d", len(last), len(final))
					}
					for c, want := range final {
						if last[c] != want {
							t.Errorf("category %d: final average %v, want %v", c, last[c], want)
						}
					}
				})
			})
		}
	}
}

// windowConfigs are the configurations the window query tests run: events
// in order, and out of order in groups of 37.
func windowConfigs() map[string]nexmark.Config {
	inOrder := testConfig(queryEvents)
	shuffled := testConfig(queryEvents)
	shuffled.OutOfOrderGroupSize = 37
	return map[string]nexmark.Config{"in-order": inOrder, "out-of-order": shuffled}
}

// eachWindowConfig runs f as a subtest for every window configuration and
// parallelism.
func eachWindowConfig(t *testing.T, f func(t *testing.T, cfg nexmark.Config, p int)) {
	for name, cfg := range windowConfigs() {
		t.Run(name, func(t *testing.T) {
			eachParallelism(t, func(t *testing.T, p int) { f(t, cfg, p) })
		})
	}
}

// floorTo rounds ts down to a multiple of unit.
func floorTo(ts, unit int64) int64 { return ts - ((ts%unit)+unit)%unit }

func TestQ5(t *testing.T) {
	eachWindowConfig(t, func(t *testing.T, cfg nexmark.Config, p int) {
		type key struct{ start, auction int64 }
		counts := map[key]int64{}
		for _, b := range bidsOf(generate(t, cfg)) {
			for start := floorTo(b.DateTime, 2000); start > b.DateTime-10_000; start -= 2000 {
				counts[key{start, b.Auction}]++
			}
		}
		top := map[int64]int64{}
		for k, n := range counts {
			top[k.start] = max(top[k.start], n)
		}
		var want []nexmark.Q5Result
		for k, n := range counts {
			if n == top[k.start] {
				want = append(want, nexmark.Q5Result{Auction: k.auction, Num: n, Start: k.start, End: k.start + 10_000})
			}
		}
		if len(top) < 25 {
			t.Fatalf("the reference has %d windows: the test needs more", len(top))
		}
		sameResults(t, runQuery(t, cfg, p, nexmark.Q5), want)
	})
}

func TestQ7(t *testing.T) {
	eachWindowConfig(t, func(t *testing.T, cfg nexmark.Config, p int) {
		bids := bidsOf(generate(t, cfg))
		top := map[int64]int64{}
		for _, b := range bids {
			w := floorTo(b.DateTime, 10_000)
			top[w] = max(top[w], b.Price)
		}
		var want []nexmark.Bid
		for _, b := range bids {
			if b.Price == top[floorTo(b.DateTime, 10_000)] {
				want = append(want, b)
			}
		}
		sameResults(t, runQuery(t, cfg, p, nexmark.Q7), want)
	})
}

func TestQ8(t *testing.T) {
	eachWindowConfig(t, func(t *testing.T, cfg nexmark.Config, p int) {
		events := generate(t, cfg)
		type key struct{ start, id int64 }
		sellers := map[key]bool{}
		for _, e := range events {
			if e.Kind == nexmark.KindAuction {
				sellers[key{floorTo(e.Auction.DateTime, 10_000), e.Auction.Seller}] = true
			}
		}
		var want []nexmark.Q8Result
		for _, e := range events {
			if e.Kind != nexmark.KindPerson {
				continue
			}
			start := floorTo(e.Person.DateTime, 10_000)
			if sellers[key{start, e.Person.ID}] {
				want = append(want, nexmark.Q8Result{ID: e.Person.ID, Name: e.Person.Name, Start: start})
			}
		}
		sameResults(t, runQuery(t, cfg, p, nexmark.Q8), want)
	})
}

func TestQ11(t *testing.T) {
	eachWindowConfig(t, func(t *testing.T, cfg nexmark.Config, p int) {
		times := map[int64][]int64{}
		for _, b := range bidsOf(generate(t, cfg)) {
			times[b.Bidder] = append(times[b.Bidder], b.DateTime)
		}
		var want []nexmark.Q11Result
		for bidder, ts := range times {
			slices.Sort(ts)
			s := nexmark.Q11Result{Bidder: bidder, BidCount: 1, Start: ts[0], End: ts[0] + 10_000}
			for _, x := range ts[1:] {
				if x > s.End { // a session is [first, last + gap); touching ones merge
					want = append(want, s)
					s = nexmark.Q11Result{Bidder: bidder, Start: x}
				}
				s.BidCount++
				s.End = x + 10_000
			}
			want = append(want, s)
		}
		sameResults(t, runQuery(t, cfg, p, nexmark.Q11), want)
	})
}
