package nexmark

import (
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// Q5Result is a hot item: an auction with the most bids of a sliding
// window, and that number.
type Q5Result struct {
	Auction    int64
	Num        int64
	Start, End int64 // the window, ms
}

// String returns "auction,num,start,end".
func (r Q5Result) String() string {
	return string(appendFields(nil, r.Auction, r.Num, r.Start, r.End))
}

// Q5 finds the hot items: in every sliding window of 10 s every 2 s, the
// auctions with the most bids. A sliding-window count per auction feeds a
// second stage keyed by window, which keeps the highest count and the
// auctions that have it, and emits them when the watermark passes the
// window (the counts of a window all come before that watermark). Flink's
// q5 emits (auction, num); the window is added here.
//
//	SELECT AuctionBids.auction, AuctionBids.num
//	FROM (SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
//	      FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//	      GROUP BY auction, window_start, window_end) AS AuctionBids
//	JOIN (SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
//	      FROM (SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
//	            FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//	            GROUP BY auction, window_start, window_end) AS CountBids
//	      GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
//	ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
//	   AND AuctionBids.num >= MaxBids.maxn;
func Q5(events *sdk.Stream[Event]) *sdk.Stream[Q5Result] {
	ids := sdk.FlatMap(events, func(e Event, out sdk.Collector[int64]) {
		if e.Kind == KindBid {
			out.Collect(e.Bid.Auction)
		}
	}, sdk.WithUID("q5-auctions"))
	counts := sdk.WindowAggregate(
		sdk.WindowBy(sdk.KeyBy(ids, func(id int64) int64 { return id }),
			sdk.SlidingEventTimeWindows(10*time.Second, 2*time.Second)),
		sdk.AggregateFunction[int64, int64, int64](counter[int64]{}), sdk.WithUID("q5-count"))
	return sdk.Process(sdk.KeyBy(counts, func(c sdk.Windowed[int64, int64]) sdk.Window { return c.Window }),
		sdk.KeyedProcessFunction[sdk.Window, sdk.Windowed[int64, int64], Q5Result](&q5Max{}), sdk.WithUID("q5-max"))
}

// counter counts records.
type counter[T any] struct{}

func (counter[T]) CreateAccumulator() int64 { return 0 }
func (counter[T]) Add(acc int64, _ T) int64 { return acc + 1 }
func (counter[T]) Result(acc int64) int64   { return acc }
func (counter[T]) Merge(a, b int64) int64   { return a + b }

// hotAuctions is the highest count of a window so far, and the auctions
// that have it.
type hotAuctions struct {
	Num      int64
	Auctions []int64
}

// q5Max is keyed by window: it keeps the auctions with the highest count
// and emits them when the watermark passes the window.
type q5Max struct {
	hot sdk.ValueState[hotAuctions]
}

func (q *q5Max) Open(ctx sdk.RuntimeContext) error {
	q.hot = sdk.NewValueState[hotAuctions](ctx, "hot")
	return nil
}

func (q *q5Max) ProcessElement(ctx sdk.KeyedContext[sdk.Window], c sdk.Windowed[int64, int64], _ sdk.Collector[Q5Result]) error {
	h, ok := q.hot.Value()
	switch {
	case !ok:
		ctx.TimerService().RegisterEventTimeTimer(c.Window.MaxTimestamp())
		h = hotAuctions{Num: c.Value, Auctions: []int64{c.Key}}
	case c.Value > h.Num:
		h = hotAuctions{Num: c.Value, Auctions: []int64{c.Key}}
	case c.Value == h.Num:
		// State values are read-only: append to a copy.
		h.Auctions = append(h.Auctions[:len(h.Auctions):len(h.Auctions)], c.Key)
	default:
		return nil
	}
	q.hot.Update(h)
	return nil
}

func (q *q5Max) OnTimer(ctx sdk.KeyedContext[sdk.Window], _ int64, out sdk.Collector[Q5Result]) error {
	h, _ := q.hot.Value()
	w := ctx.Key()
	for _, a := range h.Auctions {
		out.Collect(Q5Result{Auction: a, Num: h.Num, Start: w.Start, End: w.End})
	}
	q.hot.Clear()
	return nil
}

// Q7 finds the highest bids: in every tumbling window of 10 s, the bids
// whose price is the highest of the window. It aggregates in two phases,
// as Flink does: bids spread over 256 keys keep, per key and window, the
// highest price and its bids; a second stage keyed by window merges them
// when the window closes. Flink's join condition, dateTime BETWEEN
// window_end - 10 s AND window_end, also takes a bid made exactly at a
// window's end if its price is the earlier window's highest; here a bid
// is compared with its own window only.
//
//	SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
//	from bid B
//	JOIN (SELECT MAX(price) AS maxprice, window_end as dateTime
//	      FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//	      GROUP BY window_start, window_end) B1
//	ON B.price = B1.maxprice
//	WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;
func Q7(events *sdk.Stream[Event]) *sdk.Stream[Bid] {
	bs := bids(events, "q7")
	local := sdk.WindowAggregate(
		sdk.WindowBy(sdk.KeyBy(bs, func(b Bid) uint8 { return uint8(uint64(b.Price) * 0x9e3779b97f4a7c15 >> 56) }),
			sdk.TumblingEventTimeWindows(10*time.Second)),
		sdk.AggregateFunction[Bid, highest, highest](highestBids{}), sdk.WithUID("q7-local-max"))
	global := sdk.WindowAggregate(
		sdk.WindowBy(sdk.KeyBy(local, func(h sdk.Windowed[uint8, highest]) int64 { return h.Window.Start }),
			sdk.TumblingEventTimeWindows(10*time.Second)),
		sdk.AggregateFunction[sdk.Windowed[uint8, highest], highest, highest](mergeHighest{}), sdk.WithUID("q7-max"))
	return sdk.FlatMap(global, func(h sdk.Windowed[int64, highest], out sdk.Collector[Bid]) {
		for _, b := range h.Value.Bids {
			out.Collect(b)
		}
	}, sdk.WithUID("q7-results"))
}

// highest is the highest price seen and the bids with it.
type highest struct {
	Price int64
	Bids  []Bid
}

// add takes the bids of h into acc, which it may change.
func (acc highest) add(price int64, bids ...Bid) highest {
	switch {
	case len(bids) == 0 || price < acc.Price:
	case len(acc.Bids) == 0 || price > acc.Price:
		return highest{Price: price, Bids: append(acc.Bids[:0], bids...)}
	default:
		acc.Bids = append(acc.Bids, bids...)
	}
	return acc
}

// highestBids aggregates bids into the highest ones.
type highestBids struct{}

func (highestBids) CreateAccumulator() highest     { return highest{} }
func (highestBids) Add(acc highest, b Bid) highest { return acc.add(b.Price, b) }
func (highestBids) Result(acc highest) highest     { return acc }
func (highestBids) Merge(a, b highest) highest     { return a.add(b.Price, b.Bids...) }

// mergeHighest merges the highest bids of several keys.
type mergeHighest struct{}

func (mergeHighest) CreateAccumulator() highest { return highest{} }
func (mergeHighest) Add(acc highest, h sdk.Windowed[uint8, highest]) highest {
	return acc.add(h.Value.Price, h.Value.Bids...)
}
func (mergeHighest) Result(acc highest) highest { return acc }
func (mergeHighest) Merge(a, b highest) highest { return a.add(b.Price, b.Bids...) }

// Q8Result is a new user who created an auction in the 10 s window in
// which they registered.
type Q8Result struct {
	ID    int64
	Name  string
	Start int64 // the window's start, ms
}

// String returns "id,name,start".
func (r Q8Result) String() string {
	b := appendFields(nil, r.ID)
	b = append(b, ',')
	b = append(b, r.Name...)
	b = append(b, ',')
	return string(AppendTime(b, r.Start))
}

// Q8 monitors new users: the people who created an auction in the same
// tumbling 10 s window in which they registered. As in Flink, the sellers
// of each window are first made distinct (an auction window keyed by
// seller keeps one record per seller and window), then joined with the
// people in a window join on person id = seller, so that each new user
// appears once per window however many auctions they created.
//
//	SELECT P.id, P.name, P.starttime
//	FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
//	      FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//	      GROUP BY id, name, window_start, window_end) P
//	JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
//	      FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//	      GROUP BY seller, window_start, window_end) A
//	ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
func Q8(events *sdk.Stream[Event]) *sdk.Stream[Q8Result] {
	window := sdk.TumblingEventTimeWindows(10 * time.Second)
	people := sdk.FlatMap(events, func(e Event, out sdk.Collector[personName]) {
		if e.Kind == KindPerson {
			out.Collect(personName{ID: e.Person.ID, Name: e.Person.Name})
		}
	}, sdk.WithUID("q8-persons"))
	sellers := sdk.FlatMap(events, func(e Event, out sdk.Collector[int64]) {
		if e.Kind == KindAuction {
			out.Collect(e.Auction.Seller)
		}
	}, sdk.WithUID("q8-sellers"))
	distinct := sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(sellers, func(s int64) int64 { return s }), window),
		func(a, _ int64) int64 { return a }, sdk.WithUID("q8-distinct-sellers"))
	return sdk.WindowJoin(
		sdk.KeyBy(people, func(p personName) int64 { return p.ID }),
		sdk.KeyBy(distinct, func(s sdk.Windowed[int64, int64]) int64 { return s.Key }),
		window,
		func(p personName, s sdk.Windowed[int64, int64]) Q8Result {
			return Q8Result{ID: p.ID, Name: p.Name, Start: s.Window.Start}
		}, sdk.WithUID("q8-join"))
}

// personName is what Q8 keeps of a person.
type personName struct {
	ID   int64
	Name string
}

// Q11Result is the number of bids of one bidder's session.
type Q11Result struct {
	Bidder     int64
	BidCount   int64
	Start, End int64 // the session: its first bid, and its last bid plus the gap, ms
}

// String returns "bidder,bid_count,start,end", the times as TIMESTAMP(3).
func (r Q11Result) String() string {
	b := appendFields(nil, r.Bidder, r.BidCount)
	b = append(b, ',')
	b = AppendTime(b, r.Start)
	b = append(b, ',')
	return string(AppendTime(b, r.End))
}

// Q11 counts the bids of each user session: the bids of one bidder with
// at most 10 s between one and the next (a session lasts from its first
// bid to 10 s after its last, and sessions that touch merge, as Flink's
// do).
//
//	SELECT B.bidder, count(*) as bid_count,
//	       SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
//	       SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
//	FROM bid B
//	GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND);
func Q11(events *sdk.Stream[Event]) *sdk.Stream[Q11Result] {
	bidders := sdk.FlatMap(events, func(e Event, out sdk.Collector[int64]) {
		if e.Kind == KindBid {
			out.Collect(e.Bid.Bidder)
		}
	}, sdk.WithUID("q11-bidders"))
	counts := sdk.WindowAggregate(
		sdk.WindowBy(sdk.KeyBy(bidders, func(b int64) int64 { return b }), sdk.EventTimeSessionWindows(10*time.Second)),
		sdk.AggregateFunction[int64, int64, int64](counter[int64]{}), sdk.WithUID("q11-sessions"))
	return sdk.Map(counts, func(c sdk.Windowed[int64, int64]) Q11Result {
		return Q11Result{Bidder: c.Key, BidCount: c.Value, Start: c.Window.Start, End: c.Window.End}
	}, sdk.WithUID("q11-results"))
}
