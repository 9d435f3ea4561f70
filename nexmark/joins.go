package nexmark

import (
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// Q3Result is a seller of category-10 items in Oregon, Idaho or
// California, and one auction of theirs.
type Q3Result struct {
	Name  string
	City  string
	State string
	ID    int64 // the auction
}

// String returns "name,city,state,id".
func (r Q3Result) String() string {
	b := make([]byte, 0, 48)
	b = append(b, r.Name...)
	b = append(b, ',')
	b = append(b, r.City...)
	b = append(b, ',')
	b = append(b, r.State...)
	b = append(b, ',')
	return string(appendFields(b, r.ID))
}

// Q3 is the local item suggestion: who sells in Oregon, Idaho or
// California in category 10, and which auctions. It is a regular
// (unbounded) join, as Flink's: a keyed co-process by person id keeps each
// matching person, and the auctions that came before their seller, for
// ever, and emits every match once.
//
//	SELECT P.name, P.city, P.state, A.id
//	FROM auction AS A INNER JOIN person AS P on A.seller = P.id
//	WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
func Q3(events *sdk.Stream[Event]) *sdk.Stream[Q3Result] {
	as := auctions(events, "q3-auctions", func(a *Auction) bool { return a.Category == 10 })
	ps := persons(events, "q3-persons", func(p *Person) bool {
		return p.State == "OR" || p.State == "ID" || p.State == "CA"
	})
	return sdk.CoProcess(sdk.Connect(
		sdk.KeyBy(as, func(a Auction) int64 { return a.Seller }),
		sdk.KeyBy(ps, func(p Person) int64 { return p.ID })),
		sdk.KeyedCoProcessFunction[int64, Auction, Person, Q3Result](&q3Join{}), sdk.WithUID("q3-join"))
}

// sellerInfo is what Q3 keeps of a person.
type sellerInfo struct {
	Name, City, State string
}

// q3Join joins auctions (first input) with their sellers (second), keyed
// by person id.
type q3Join struct {
	seller  sdk.ValueState[sellerInfo]
	pending sdk.ListState[int64] // auctions whose seller has not come yet
}

func (j *q3Join) Open(ctx sdk.RuntimeContext) error {
	j.seller = sdk.NewValueState[sellerInfo](ctx, "seller")
	j.pending = sdk.NewListState[int64](ctx, "pending-auctions")
	return nil
}

func (j *q3Join) ProcessElement1(_ sdk.KeyedContext[int64], a Auction, out sdk.Collector[Q3Result]) error {
	if p, ok := j.seller.Value(); ok {
		out.Collect(Q3Result{Name: p.Name, City: p.City, State: p.State, ID: a.ID})
		return nil
	}
	j.pending.Add(a.ID)
	return nil
}

func (j *q3Join) ProcessElement2(_ sdk.KeyedContext[int64], p Person, out sdk.Collector[Q3Result]) error {
	s := sellerInfo{Name: p.Name, City: p.City, State: p.State}
	j.seller.Update(s)
	for _, id := range j.pending.Get() {
		out.Collect(Q3Result{Name: s.Name, City: s.City, State: s.State, ID: id})
	}
	j.pending.Clear()
	return nil
}

// Q4Result is the running average of the winning bids of one category's
// closed auctions: after an auction of the category closes with at least
// one bid, the average of the winning prices of its Count closed auctions.
type Q4Result struct {
	Category int64
	Average  int64 // Sum / Count, rounded down, as Flink's AVG of a BIGINT
	Sum      int64
	Count    int64
}

// String returns "category,average,sum,count".
func (r Q4Result) String() string {
	return string(appendFields(nil, r.Category, r.Average, r.Sum, r.Count))
}

// AuctionMax is the winning (highest) price of the bids on a closed
// auction, the first stage of Q4.
type AuctionMax struct {
	Auction  int64
	Category int64
	Price    int64
}

// closedAuctionTTL is how long, in event time after it closes, Q4
// remembers a closed auction, to drop the bids that come for it at once
// instead of buffering them until the watermark passes them. It bounds
// memory only: a forgotten auction's late bids are dropped all the same.
const closedAuctionTTL = 60 * time.Second

// Q4 is the average price for a category: the average of the winning bid
// prices of the auctions of each category. The winning bid of an auction
// is its highest bid made from its dateTime to its expiry, both included
// (SQL's BETWEEN). The Flink query is a regular join and aggregation that
// updates its averages as bids come; here an auction's winning price is
// final when the watermark passes its expiry, and each one then updates
// its category's average, so the stream holds one running average per
// closed auction and the last one per category is the final answer.
//
//	SELECT Q.category, AVG(Q.final)
//	FROM (
//	    SELECT MAX(B.price) AS final, A.category
//	    FROM auction A, bid B
//	    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//	    GROUP BY A.id, A.category
//	) Q
//	GROUP BY Q.category;
func Q4(events *sdk.Stream[Event]) *sdk.Stream[Q4Result] {
	return q4Average(Q4Winners(events))
}

// Q4Winners is the first stage of Q4: the winning price of every auction
// that had bids, emitted when the auction closes (when the watermark
// passes its expiry).
func Q4Winners(events *sdk.Stream[Event]) *sdk.Stream[AuctionMax] {
	as := auctions(events, "q4-auctions", func(*Auction) bool { return true })
	bs := bids(events, "q4")
	return sdk.CoProcess(sdk.Connect(
		sdk.KeyBy(as, func(a Auction) int64 { return a.ID }),
		sdk.KeyBy(bs, func(b Bid) int64 { return b.Auction })),
		sdk.KeyedCoProcessFunction[int64, Auction, Bid, AuctionMax](&q4Winner{}), sdk.WithUID("q4-winners"))
}

func q4Average(winners *sdk.Stream[AuctionMax]) *sdk.Stream[Q4Result] {
	return sdk.Process(sdk.KeyBy(winners, func(m AuctionMax) int64 { return m.Category }),
		sdk.KeyedProcessFunction[int64, AuctionMax, Q4Result](&q4Avg{}), sdk.WithUID("q4-average"))
}

// auctionSpan is what Q4 keeps of an auction.
type auctionSpan struct {
	DateTime, Expires int64
	Category          int64
	Closed            bool
}

// pendingBid is a bid that came before its auction.
type pendingBid struct {
	DateTime, Price int64
}

// q4Winner finds the highest bid of each auction, keyed by auction id.
type q4Winner struct {
	auction sdk.ValueState[auctionSpan]
	best    sdk.ValueState[int64]
	pending sdk.ListState[pendingBid]
}

func (w *q4Winner) Open(ctx sdk.RuntimeContext) error {
	w.auction = sdk.NewValueState[auctionSpan](ctx, "auction")
	w.best = sdk.NewValueState[int64](ctx, "best-price")
	w.pending = sdk.NewListState[pendingBid](ctx, "pending-bids")
	return nil
}

// bid takes a bid on a known, open auction.
func (w *q4Winner) bid(a auctionSpan, ts, price int64) {
	if ts < a.DateTime || ts > a.Expires {
		return
	}
	if best, ok := w.best.Value(); !ok || price > best {
		w.best.Update(price)
	}
}

func (w *q4Winner) ProcessElement1(ctx sdk.KeyedContext[int64], a Auction, _ sdk.Collector[AuctionMax]) error {
	span := auctionSpan{DateTime: a.DateTime, Expires: a.Expires, Category: a.Category}
	w.auction.Update(span)
	for _, b := range w.pending.Get() {
		w.bid(span, b.DateTime, b.Price)
	}
	w.pending.Clear()
	ctx.TimerService().RegisterEventTimeTimer(a.Expires)
	return nil
}

func (w *q4Winner) ProcessElement2(ctx sdk.KeyedContext[int64], b Bid, _ sdk.Collector[AuctionMax]) error {
	a, ok := w.auction.Value()
	switch {
	case ok && a.Closed:
	case ok:
		w.bid(a, b.DateTime, b.Price)
	default:
		// The auction may still come with the same or an earlier time,
		// until the watermark passes the bid.
		w.pending.Add(pendingBid{DateTime: b.DateTime, Price: b.Price})
		ctx.TimerService().RegisterEventTimeTimer(b.DateTime)
	}
	return nil
}

func (w *q4Winner) OnTimer(ctx sdk.KeyedContext[int64], ts int64, out sdk.Collector[AuctionMax]) error {
	a, ok := w.auction.Value()
	switch {
	case !ok:
		// Bids whose auction never came by their time: drop them.
		kept := w.pending.Get()[:0:0]
		for _, b := range w.pending.Get() {
			if b.DateTime > ts {
				kept = append(kept, b)
			}
		}
		w.pending.Update(kept)
	case !a.Closed && ts >= a.Expires:
		if best, ok := w.best.Value(); ok {
			out.Collect(AuctionMax{Auction: ctx.Key(), Category: a.Category, Price: best})
		}
		w.best.Clear()
		a.Closed = true
		w.auction.Update(a)
		ctx.TimerService().RegisterEventTimeTimer(a.Expires + closedAuctionTTL.Milliseconds())
	case a.Closed && ts >= a.Expires+closedAuctionTTL.Milliseconds():
		w.auction.Clear()
	}
	return nil
}

// q4Avg keeps the running average of the winning prices per category.
type q4Avg struct {
	sum, count sdk.ValueState[int64]
}

func (q *q4Avg) Open(ctx sdk.RuntimeContext) error {
	q.sum = sdk.NewValueState[int64](ctx, "sum")
	q.count = sdk.NewValueState[int64](ctx, "count")
	return nil
}

func (q *q4Avg) ProcessElement(ctx sdk.KeyedContext[int64], m AuctionMax, out sdk.Collector[Q4Result]) error {
	sum, _ := q.sum.Value()
	count, _ := q.count.Value()
	sum += m.Price
	count++
	q.sum.Update(sum)
	q.count.Update(count)
	out.Collect(Q4Result{Category: ctx.Key(), Average: sum / count, Sum: sum, Count: count})
	return nil
}
