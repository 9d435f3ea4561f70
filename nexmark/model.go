package nexmark

import (
	"strconv"
	"time"
)

// Person is a new user of the auction site.
type Person struct {
	ID           int64
	Name         string
	EmailAddress string
	CreditCard   string
	City         string
	State        string
	DateTime     int64 // event time, ms since the Unix epoch
	Extra        string
}

// Auction is an item put up for auction by a seller, open from DateTime to
// Expires.
type Auction struct {
	ID          int64
	ItemName    string
	Description string
	InitialBid  int64 // cents
	Reserve     int64 // cents
	DateTime    int64 // event time, ms since the Unix epoch
	Expires     int64 // ms since the Unix epoch
	Seller      int64 // a Person's ID
	Category    int64
	Extra       string
}

// Bid is a bid of a person on an auction.
type Bid struct {
	Auction  int64 // an Auction's ID
	Bidder   int64 // a Person's ID
	Price    int64 // cents
	Channel  string
	URL      string
	DateTime int64 // event time, ms since the Unix epoch
	Extra    string
}

// Kind says which of an Event's members is set.
type Kind uint8

// The kinds of events; the values are those of nexmark-flink's event_type.
const (
	KindPerson Kind = iota
	KindAuction
	KindBid
)

// String returns "person", "auction" or "bid".
func (k Kind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one generated event: a tagged struct whose member named by Kind
// is set and whose other members are zero. Members are held by value, not
// by pointer, so that generating an event allocates nothing and the
// runtime passes it through chained operators without touching the heap;
// the zero members cost about 20 bytes when an event is encoded.
type Event struct {
	Kind    Kind
	Person  Person
	Auction Auction
	Bid     Bid
}

// Time returns the event time of the event in ms: its member's DateTime.
func (e Event) Time() int64 {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	}
	return e.Bid.DateTime
}

// String returns the stable text form of the event: its kind, then its
// member's fields, comma-separated.
func (e Event) String() string {
	switch e.Kind {
	case KindPerson:
		return "person," + e.Person.String()
	case KindAuction:
		return "auction," + e.Auction.String()
	}
	return "bid," + e.Bid.String()
}

// String returns the person's fields, comma-separated.
func (p Person) String() string {
	b := make([]byte, 0, 64+len(p.Extra))
	b = strconv.AppendInt(b, p.ID, 10)
	b = append(b, ',')
	b = append(b, p.Name...)
	b = append(b, ',')
	b = append(b, p.EmailAddress...)
	b = append(b, ',')
	b = append(b, p.CreditCard...)
	b = append(b, ',')
	b = append(b, p.City...)
	b = append(b, ',')
	b = append(b, p.State...)
	b = append(b, ',')
	b = AppendTime(b, p.DateTime)
	b = append(b, ',')
	b = append(b, p.Extra...)
	return string(b)
}

// String returns the auction's fields, comma-separated.
func (a Auction) String() string {
	b := make([]byte, 0, 96+len(a.ItemName)+len(a.Description)+len(a.Extra))
	b = strconv.AppendInt(b, a.ID, 10)
	b = append(b, ',')
	b = append(b, a.ItemName...)
	b = append(b, ',')
	b = append(b, a.Description...)
	b = append(b, ',')
	b = strconv.AppendInt(b, a.InitialBid, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, a.Reserve, 10)
	b = append(b, ',')
	b = AppendTime(b, a.DateTime)
	b = append(b, ',')
	b = AppendTime(b, a.Expires)
	b = append(b, ',')
	b = strconv.AppendInt(b, a.Seller, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, a.Category, 10)
	b = append(b, ',')
	b = append(b, a.Extra...)
	return string(b)
}

// String returns the bid's fields, comma-separated.
func (x Bid) String() string {
	b := make([]byte, 0, 64+len(x.Channel)+len(x.URL)+len(x.Extra))
	b = strconv.AppendInt(b, x.Auction, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, x.Bidder, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, x.Price, 10)
	b = append(b, ',')
	b = append(b, x.Channel...)
	b = append(b, ',')
	b = append(b, x.URL...)
	b = append(b, ',')
	b = AppendTime(b, x.DateTime)
	b = append(b, ',')
	b = append(b, x.Extra...)
	return string(b)
}

// timeLayout is how Flink prints a TIMESTAMP(3).
const timeLayout = "2006-01-02 15:04:05.000"

// AppendTime appends the event time ms (ms since the Unix epoch) in UTC as
// Flink prints a TIMESTAMP(3): 2015-07-15 00:00:01.250.
func AppendTime(b []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(b, timeLayout)
}

// FormatTime returns AppendTime's form of ms.
func FormatTime(ms int64) string { return string(AppendTime(nil, ms)) }
