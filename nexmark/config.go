package nexmark

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"time"
)

// The constants of the reference generator (nexmark-flink's
// NexmarkConfiguration and the model generators), fixed here.
const (
	// PersonProportion, AuctionProportion and BidProportion are the shares
	// of the event kinds: out of every TotalProportion consecutive event
	// ids, the first is a person, the next three auctions, the rest bids.
	PersonProportion  = 1
	AuctionProportion = 3
	BidProportion     = 46
	TotalProportion   = PersonProportion + AuctionProportion + BidProportion

	// FirstPersonID, FirstAuctionID and FirstCategoryID offset the ids, so
	// that queries find matches even on small runs.
	FirstPersonID   = 1000
	FirstAuctionID  = 1000
	FirstCategoryID = 10
	// NumCategories is how many categories auctions are in.
	NumCategories = 5

	numActivePeople     = 1000
	numInFlightAuctions = 100
	personIDLead        = 10
	auctionIDLead       = 10
	hotAuctionRatio     = 2
	hotSellersRatio     = 4
	hotBiddersRatio     = 4
	hotRatio            = 100 // the batch of people or auctions a hot one heads
	avgPersonByteSize   = 200
	avgAuctionByteSize  = 500
	avgBidByteSize      = 100
)

// DefaultEventRate is the event-time rate of a configuration that does
// not choose one: 10 million events per second, the rate of nexmark-flink's
// benchmark suite (nexmark.workload.suite.100m.tps), with which the
// published figures were measured. At that rate 10 s of event time hold
// 100 million events, so window queries over a few million events see few
// windows; tests choose lower rates.
const DefaultEventRate = 10_000_000

// DefaultBaseTime is the event time of the first event: 2015-07-15
// 00:00:00 UTC, Beam's and nexmark-flink's baseline, in ms.
var DefaultBaseTime = time.Date(2015, 7, 15, 0, 0, 0, 0, time.UTC).UnixMilli()

// WatermarkDelay is how far the watermark trails the highest event time a
// source split has seen: Flink's DDL declares `WATERMARK FOR dateTime AS
// dateTime - INTERVAL '4' SECOND`.
const WatermarkDelay = 4 * time.Second

// Config says which events the generator makes and how a source emits
// them.
type Config struct {
	// Events is how many events to generate; negative means without end.
	Events int64
	// FirstEventID offsets the event ids (the seed of each event's data),
	// as nexmark's firstEventId: events FirstEventID, FirstEventID+1, ...
	FirstEventID int64
	// EventRate is the event-time rate, in events per second over all
	// generators: event number n of a generator has the timestamp
	// BaseTime + n * (1e6 / EventRate * NumGenerators) µs. It says how
	// far apart in event time events are, not how fast they are made.
	EventRate float64
	// BaseTime is the event time of the first event, ms since the epoch.
	BaseTime int64
	// NumGenerators is the number of parallel timelines, as nexmark's
	// numEventGenerators: the events are cut into that many contiguous
	// ranges of ids, each starting at BaseTime and advancing
	// NumGenerators times slower. It is part of the data, not of the
	// job's parallelism: the same configuration gives the same events at
	// any parallelism.
	NumGenerators int
	// OutOfOrderGroupSize permutes the events of every group of that many
	// consecutive events of a generator (ids and timestamps both), as
	// nexmark's outOfOrderGroupSize; 1 keeps them in order.
	OutOfOrderGroupSize int64
	// Seed makes a different, equally deterministic event stream.
	Seed uint64
	// RateLimit, when positive, limits the source to that many events per
	// second of wall-clock time over all its subtasks. Zero emits as fast
	// as the job consumes.
	RateLimit float64
}

// DefaultConfig returns the configuration of nexmark-flink's benchmark
// suite with a million events: the default event rate, one generator,
// events in order, no rate limit.
func DefaultConfig() Config {
	return Config{
		Events:              1_000_000,
		EventRate:           DefaultEventRate,
		BaseTime:            DefaultBaseTime,
		NumGenerators:       1,
		OutOfOrderGroupSize: 1,
	}
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.FirstEventID < 0 {
		errs = append(errs, fmt.Errorf("first event id %d: want at least 0", c.FirstEventID))
	}
	if !(c.EventRate > 0) || math.IsInf(c.EventRate, 0) {
		errs = append(errs, fmt.Errorf("event rate %v: want a positive number of events per second", c.EventRate))
	}
	if c.NumGenerators < 1 {
		errs = append(errs, fmt.Errorf("%d generators: want at least 1", c.NumGenerators))
	}
	if c.OutOfOrderGroupSize < 1 {
		errs = append(errs, fmt.Errorf("out-of-order group size %d: want at least 1", c.OutOfOrderGroupSize))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, fmt.Errorf("rate limit %v: want a positive number of events per second, or 0 for none", c.RateLimit))
	}
	if c.Events >= 0 && c.NumGenerators > 1 && c.Events < int64(c.NumGenerators) {
		errs = append(errs, fmt.Errorf("%d events over %d generators: want at least one each", c.Events, c.NumGenerators))
	}
	if len(errs) > 0 {
		return fmt.Errorf("nexmark config: %w", errors.Join(errs...))
	}
	return nil
}

// RegisterFlags defines flags that set the configuration's fields, with
// their current values as defaults: -events, -rate (the event-time rate),
// -rate-limit, -generators, -out-of-order and -seed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.Events, "events", c.Events, "how many events to generate (negative: without end)")
	fs.Float64Var(&c.EventRate, "rate", c.EventRate, "event-time rate: events per second of event time (how far apart their timestamps are, not how fast they are made)")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "emit at most this many events per second of wall-clock time over all source subtasks (0: as fast as possible)")
	fs.IntVar(&c.NumGenerators, "generators", c.NumGenerators, "number of generator timelines (part of the data, not the parallelism)")
	fs.Int64Var(&c.OutOfOrderGroupSize, "out-of-order", c.OutOfOrderGroupSize, "permute the events of every group of this many (1: in order)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the generated data")
}
