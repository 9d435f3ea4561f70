package nexmark

import (
	"strconv"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// The queries are job builders: each takes the stream of events (Events)
// and adds the operators of one Nexmark query, with the semantics of its
// Flink SQL version (nexmark-flink's queries/q*.sql), and returns its
// results. Their operators' UIDs start with the query's name, so that
// several queries can share one job and one source.

// Q0 is the pass-through query: every bid, unchanged. It measures the cost
// of the source and of the framework.
//
//	SELECT auction, bidder, price, dateTime, extra FROM bid;
func Q0(events *sdk.Stream[Event]) *sdk.Stream[Bid] {
	return bids(events, "q0")
}

// Q1 converts every bid's price from dollars to euros: 0.908 * price.
// Flink's result is a DECIMAL(23, 3) of dollars-cents times 0.908; here
// the price stays an int64 of cents, rounded down: price * 908 / 1000.
//
//	SELECT auction, bidder, 0.908 * price as price, dateTime, extra FROM bid;
func Q1(events *sdk.Stream[Event]) *sdk.Stream[Bid] {
	return sdk.FlatMap(events, func(e Event, out sdk.Collector[Bid]) {
		if e.Kind == KindBid {
			b := e.Bid
			b.Price = EuroCents(b.Price)
			out.Collect(b)
		}
	}, sdk.WithUID("q1-euros"))
}

// EuroCents converts a price in dollar cents to euro cents, rounded down,
// as Q1 does.
func EuroCents(dollarCents int64) int64 { return dollarCents * 908 / 1000 }

// Q2Result is an auction and the price of one of its bids.
type Q2Result struct {
	Auction int64
	Price   int64
}

// String returns "auction,price".
func (r Q2Result) String() string {
	return strconv.FormatInt(r.Auction, 10) + "," + strconv.FormatInt(r.Price, 10)
}

// Q2 selects the bids on a few auctions: those whose id is a multiple of
// 123.
//
//	SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
func Q2(events *sdk.Stream[Event]) *sdk.Stream[Q2Result] {
	return sdk.FlatMap(events, func(e Event, out sdk.Collector[Q2Result]) {
		if e.Kind == KindBid && e.Bid.Auction%123 == 0 {
			out.Collect(Q2Result{Auction: e.Bid.Auction, Price: e.Bid.Price})
		}
	}, sdk.WithUID("q2-select"))
}

// bids returns the bids of the events; its operator's UID is
// query+"-bids".
func bids(events *sdk.Stream[Event], query string) *sdk.Stream[Bid] {
	return sdk.FlatMap(events, func(e Event, out sdk.Collector[Bid]) {
		if e.Kind == KindBid {
			out.Collect(e.Bid)
		}
	}, sdk.WithUID(query+"-bids"))
}

// auctions returns the auctions of the events that keep accepts.
func auctions(events *sdk.Stream[Event], uid string, keep func(*Auction) bool) *sdk.Stream[Auction] {
	return sdk.FlatMap(events, func(e Event, out sdk.Collector[Auction]) {
		if e.Kind == KindAuction && keep(&e.Auction) {
			out.Collect(e.Auction)
		}
	}, sdk.WithUID(uid))
}

// persons returns the persons of the events that keep accepts.
func persons(events *sdk.Stream[Event], uid string, keep func(*Person) bool) *sdk.Stream[Person] {
	return sdk.FlatMap(events, func(e Event, out sdk.Collector[Person]) {
		if e.Kind == KindPerson && keep(&e.Person) {
			out.Collect(e.Person)
		}
	}, sdk.WithUID(uid))
}

// appendFields appends the decimal forms of vs, comma-separated.
func appendFields(b []byte, vs ...int64) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return b
}
