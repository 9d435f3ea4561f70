package nexmark

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
)

// Generator makes the events of a configuration. Event i is a function of
// the configuration and i alone: each event draws its random numbers from
// its own source, seeded with its event id and the configuration's seed (as
// Beam's generator does, and unlike nexmark-flink's, which shares one
// unseeded source per generator). A Generator is safe for concurrent use.
//
// It follows nexmark-flink's generator (GeneratorConfig, NexmarkGenerator
// and the model generators) in everything but the random source and three
// details, each for speed or determinism:
//
//   - the strings made of random letters (item names, descriptions, the
//     extra padding, the parts of email addresses) are substrings, of the
//     reference lengths, of two fixed pools of random text, so that making
//     one allocates nothing;
//   - the URLs of the 10,000 channels are made once from a fixed seed,
//     where nexmark-flink makes them from an unseeded source;
//   - bidders are offset by FirstPersonID once, as in Beam and SPEC.md, not
//     twice as nexmark-flink's BidGenerator does.
type Generator struct {
	cfg      Config
	delayUs  float64 // event-time µs between two events of one generator
	perGen   int64   // events of each generator but the last
	seed     uint64
	channels *channelTable
	pools    *textPools
}

// NewGenerator returns the generator of cfg.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	total := cfg.Events
	if total < 0 {
		// nexmark's bound for "as many as possible", so that the
		// generators' ranges are the reference's.
		total = math.MaxInt64 / (TotalProportion * max(avgPersonByteSize, avgAuctionByteSize, avgBidByteSize))
	}
	return &Generator{
		cfg:      cfg,
		delayUs:  1e6 / cfg.EventRate * float64(cfg.NumGenerators),
		perGen:   total / int64(cfg.NumGenerators),
		seed:     mix64(cfg.Seed + 0x9e3779b97f4a7c15),
		channels: channels(),
		pools:    pools(),
	}, nil
}

// Config returns the generator's configuration.
func (g *Generator) Config() Config { return g.cfg }

// position locates event i: its event id, and its number within its
// generator's timeline after the out-of-order permutation.
func (g *Generator) position(i int64) (id, number int64) {
	var gen int64
	if n := int64(g.cfg.NumGenerators); n > 1 {
		gen = min(i/g.perGen, n-1)
		i -= gen * g.perGen
	}
	number = i
	if n := g.cfg.OutOfOrderGroupSize; n > 1 {
		number = (i/n)*n + (i*953)%n
	}
	return g.cfg.FirstEventID + gen*g.perGen + number, number
}

// timestamp is the event time of event number n of a generator.
func (g *Generator) timestamp(n int64) int64 {
	return g.cfg.BaseTime + int64(float64(n)*g.delayUs)/1000
}

// ID returns the event id of event i.
func (g *Generator) ID(i int64) int64 {
	id, _ := g.position(i)
	return id
}

// Event returns event i of the configuration (i from 0).
func (g *Generator) Event(i int64) Event {
	var e Event
	g.Fill(i, &e)
	return e
}

// Fill sets *e to event i, which it overwrites entirely.
func (g *Generator) Fill(i int64, e *Event) {
	id, number := g.position(i)
	ts := g.timestamp(number)
	r := rng{s: uint64(id) ^ g.seed}
	switch rem := id % TotalProportion; {
	case rem < PersonProportion:
		*e = Event{Kind: KindPerson}
		g.person(&e.Person, id, ts, &r)
	case rem < PersonProportion+AuctionProportion:
		*e = Event{Kind: KindAuction}
		g.auction(&e.Auction, id, number, ts, &r)
	default:
		*e = Event{Kind: KindBid}
		g.bid(&e.Bid, id, ts, &r)
	}
}

// LastPersonID returns the id, less FirstPersonID, of the last person made
// at or before event id (the person's own, for a person).
func LastPersonID(id int64) int64 {
	epoch, offset := id/TotalProportion, id%TotalProportion
	if offset >= PersonProportion {
		offset = PersonProportion - 1
	}
	return epoch*PersonProportion + offset
}

// LastAuctionID returns the id, less FirstAuctionID, of the last auction
// made at or before event id (the auction's own, for an auction).
func LastAuctionID(id int64) int64 {
	epoch, offset := id/TotalProportion, id%TotalProportion
	switch {
	case offset < PersonProportion:
		epoch--
		offset = AuctionProportion - 1
	case offset >= PersonProportion+AuctionProportion:
		offset = AuctionProportion - 1
	default:
		offset -= PersonProportion
	}
	return epoch*AuctionProportion + offset
}

// activePerson draws one of the last numActivePeople people, or one of the
// next few yet to be made (base 0).
func activePerson(id int64, r *rng) int64 {
	people := LastPersonID(id) + 1
	active := min(people, numActivePeople)
	return people - active + r.intn(active+personIDLead)
}

// inFlightAuction draws one of the last numInFlightAuctions auctions, or
// one of the next few (base 0).
func inFlightAuction(id int64, r *rng) int64 {
	last := LastAuctionID(id)
	lo := max(last-numInFlightAuctions, 0)
	return lo + r.intn(last-lo+1+auctionIDLead)
}

func (g *Generator) person(p *Person, id, ts int64, r *rng) {
	p.ID = LastPersonID(id) + FirstPersonID
	p.Name = personNames[r.intn(int64(len(personNames)))]
	p.EmailAddress = g.text(r, 7) + "@" + g.text(r, 5) + ".com"
	p.CreditCard = creditCard(r)
	p.City = usCities[r.intn(int64(len(usCities)))]
	p.State = usStates[r.intn(int64(len(usStates)))]
	p.DateTime = ts
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(r, size, avgPersonByteSize)
}

// auctionHorizonEvents is how many events it takes to make
// numInFlightAuctions auctions.
const auctionHorizonEvents = numInFlightAuctions * TotalProportion / AuctionProportion

func (g *Generator) auction(a *Auction, id, number, ts int64, r *rng) {
	a.ID = LastAuctionID(id) + FirstAuctionID
	if r.intn(hotSellersRatio) > 0 {
		// The first person of the batch of the last hotRatio people.
		a.Seller = (LastPersonID(id) / hotRatio) * hotRatio
	} else {
		a.Seller = activePerson(id, r)
	}
	a.Seller += FirstPersonID
	a.Category = FirstCategoryID + r.intn(NumCategories)
	a.InitialBid = price(r)
	// Auctions last 1 ms to twice the event time that numInFlightAuctions
	// more auctions take to be made.
	horizon := g.timestamp(number+auctionHorizonEvents) - ts
	a.DateTime = ts
	a.Expires = ts + 1 + r.intn(max(horizon*2, 1))
	a.ItemName = g.text(r, 20)
	a.Description = g.text(r, 100)
	a.Reserve = a.InitialBid + price(r)
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = g.extra(r, size, avgAuctionByteSize)
}

func (g *Generator) bid(b *Bid, id, ts int64, r *rng) {
	if r.intn(hotAuctionRatio) > 0 {
		// The first auction of the batch of the last hotRatio auctions.
		b.Auction = (LastAuctionID(id) / hotRatio) * hotRatio
	} else {
		b.Auction = inFlightAuction(id, r)
	}
	b.Auction += FirstAuctionID
	if r.intn(hotBiddersRatio) > 0 {
		// The second person of the batch, so that hot bidders are not hot
		// sellers.
		b.Bidder = (LastPersonID(id)/hotRatio)*hotRatio + 1
	} else {
		b.Bidder = activePerson(id, r)
	}
	b.Bidder += FirstPersonID
	b.Price = price(r)
	var ch *channelURL
	if r.intn(2) > 0 {
		ch = &g.channels.hot[r.intn(int64(len(hotChannels)))]
	} else {
		ch = &g.channels.cold[r.intn(numChannels)]
	}
	b.Channel, b.URL = ch.channel, ch.url
	b.DateTime = ts
	b.Extra = g.extra(r, 8+8+8+8, avgBidByteSize)
}

// price draws a price in cents, log-uniform from $1 to $1,000,000:
// round(10^(6u) * 100) for u uniform in [0, 1).
func price(r *rng) int64 {
	// floor(x + 0.5) is Java's Math.round, and math.Round for x > 0.
	return int64(pow10(r.float()*6)*100 + 0.5)
}

// pow10 returns 10^x for x in [0, 6], within 1e-12 of math.Pow's (which
// costs more than the rest of a bid): 10^x = 2^n * 2^(i/64) * e^y, with n
// and i integers, a table of the 64 powers 2^(i/64), and y below
// ln(2)/64, where five terms of e^y's series suffice.
func pow10(x float64) float64 {
	t := x * (math.Log2E * math.Ln10) * 64 // log2(10^x) in 64ths
	k := int(t)
	y := (t - float64(k)) * (math.Ln2 / 64)
	ey := 1 + y*(1+y*(1.0/2+y*(1.0/6+y*(1.0/24+y*(1.0/120)))))
	pow2 := math.Float64frombits(uint64(1023+k>>6) << 52) // 2^(k/64), exactly
	return pow2 * exp2Table[k&63] * ey
}

// exp2Table holds 2^(i/64) for i in [0, 64).
var exp2Table = func() (t [64]float64) {
	for i := range t {
		t[i] = math.Exp2(float64(i) / 64)
	}
	return t
}()

// minStringLength is the shortest string text makes, before trimming.
const minStringLength = 3

// text returns a string of 3 to maxLength-1 random lowercase letters and
// spaces (one character in 13 a space), trimmed, as nexmark's nextString.
func (g *Generator) text(r *rng, maxLength int64) string {
	n := minStringLength + r.intn(maxLength-minStringLength)
	p := g.pools
	off := r.intn(int64(len(p.text)) - n)
	return strings.TrimSpace(p.text[off : off+n])
}

// extra returns random letters that pad an event of currentSize bytes to
// about desiredAverage bytes on average, as nexmark's nextExtra: a length
// within 20% of the difference.
func (g *Generator) extra(r *rng, currentSize, desiredAverage int) string {
	if currentSize > desiredAverage {
		return ""
	}
	desiredAverage -= currentSize
	delta := int64(math.Round(float64(desiredAverage) * 0.2))
	n := int64(desiredAverage) - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	p := g.pools
	off := r.intn(int64(len(p.letters)) - n)
	return p.letters[off : off+n]
}

// creditCard returns four groups of four digits.
func creditCard(r *rng) string {
	var b [19]byte
	for i := range 4 {
		v := r.intn(10000)
		o := i * 5
		if i > 0 {
			b[o-1] = ' '
		}
		for k := 3; k >= 0; k-- {
			b[o+k] = byte('0' + v%10)
			v /= 10
		}
	}
	return string(b[:])
}

var (
	usStates    = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities    = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames  = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames   = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
	// personNames are the first names times the last names, made once so
	// that drawing a name allocates nothing; drawing an index into it is
	// drawing a first then a last name.
	personNames = func() []string {
		var out []string
		for _, f := range firstNames {
			for _, l := range lastNames {
				out = append(out, f+" "+l)
			}
		}
		return out
	}()
)

// numChannels is the number of channels besides the hot ones.
const numChannels = 10_000

type channelURL struct{ channel, url string }

type channelTable struct {
	hot  []channelURL
	cold []channelURL
}

// tableSeed seeds the fixed pools and the channel table.
const tableSeed = 0x6e65786d61726b // "nexmark"

// channels returns the channels and their URLs, made once: the hot ones
// with a plain URL each, and channel-0 to channel-9999, nine in ten of
// whose URLs carry a channel_id.
var channels = sync.OnceValue(func() *channelTable {
	r := rng{s: tableSeed}
	t := &channelTable{}
	for _, c := range hotChannels {
		t.hot = append(t.hot, channelURL{channel: c, url: baseURL(&r)})
	}
	for i := range numChannels {
		u := baseURL(&r)
		if r.intn(10) > 0 {
			// nexmark: Math.abs(Integer.reverse(channelNumber)), whose
			// overflow for channel 1 is kept.
			id := int32(bits.Reverse32(uint32(i)))
			if id < 0 {
				id = -id
			}
			u += "&channel_id=" + strconv.Itoa(int(id))
		}
		t.cold = append(t.cold, channelURL{channel: "channel-" + strconv.Itoa(i), url: u})
	}
	return t
})

func baseURL(r *rng) string {
	return "https://www.nexmark.com/" + slowText(r, 5, '_') + "/" + slowText(r, 5, '_') + "/" +
		slowText(r, 5, '_') + "/item.htm?query=1"
}

// slowText is nexmark's nextString with a special character instead of the
// space, drawn character by character.
func slowText(r *rng, maxLength int64, special byte) string {
	n := minStringLength + r.intn(maxLength-minStringLength)
	b := make([]byte, n)
	for i := range b {
		if r.intn(13) == 0 {
			b[i] = special
		} else {
			b[i] = byte('a' + r.intn(26))
		}
	}
	return strings.TrimSpace(string(b))
}

// poolSize is the length of each pool of random text.
const poolSize = 1 << 17

type textPools struct {
	text    string // lowercase letters and spaces, one in 13 a space
	letters string // lowercase letters
}

// pools returns the pools of random text that strings are cut from. Every
// character of them is drawn independently, so that a substring at a random
// offset is distributed as nexmark's strings of its length are.
var pools = sync.OnceValue(func() *textPools {
	r := rng{s: tableSeed + 1}
	text := make([]byte, poolSize)
	for i := range text {
		if r.intn(13) == 0 {
			text[i] = ' '
		} else {
			text[i] = byte('a' + r.intn(26))
		}
	}
	letters := make([]byte, poolSize)
	for i := range letters {
		letters[i] = byte('a' + r.intn(26))
	}
	return &textPools{text: string(text), letters: string(letters)}
})

// rng is splitmix64: a tiny, fast generator whose whole state is one word,
// so that every event can have its own, seeded with its id.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// mix64 is splitmix64's finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n) for n > 0 (Lemire's multiply-shift).
func (r *rng) intn(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(int64(r.next()>>11)) * 0x1p-53 }
