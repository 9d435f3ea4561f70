package sdk

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// IntervalJoin joins two keyed streams on event time, as Flink's interval
// join: for every record a of a and b of b with equal keys and
//
//	a.ts + lower <= b.ts <= a.ts + upper
//
// it emits join(a, b), stamped with the later of the two timestamps. The
// bounds are inclusive, in whole milliseconds, and may be negative; lower
// must not be above upper. Both streams need event time (a source with
// WithWatermarks): a record without a timestamp fails the job.
//
// The operator buffers the records of both sides in keyed state and drops
// each as soon as the watermark (the lower of the two inputs') makes any
// further match with it impossible, so its state is bounded by the width
// of the interval and the out-of-orderness of the inputs. A late record,
// one with a timestamp at or below the watermark, is dropped, as in
// Flink. The pairs a record completes are emitted in the time order of
// their other halves. The operator keeps state, so it needs a UID
// (WithUID).
func IntervalJoin[K comparable, A, B, OUT any](a *KeyedStream[K, A], b *KeyedStream[K, B], lower, upper time.Duration,
	join func(a A, b B) OUT, opts ...Option) *Stream[OUT] {
	if a == nil || b == nil {
		panic("sdk: IntervalJoin of a nil stream")
	}
	lo, up := lower.Milliseconds(), upper.Milliseconds()
	if lo > up {
		a.job.errs = append(a.job.errs, fmt.Errorf("interval join: lower bound %v is above upper bound %v", lower, upper))
	}
	if join == nil {
		a.job.errs = append(a.job.errs, errors.New("interval join: nil join function"))
	}
	return addTwoInput(a, b, kindIntervalJoin, opts,
		func(tc *engine.TaskContext, op *twoInputOp[K, A, B, OUT]) error {
			j := &intervalJoiner[K, A, B, OUT]{op: op, lower: lo, upper: up, join: join}
			j.left = NewMapState[int64, []A](op.core.runtime(), "interval-join-left")
			j.right = NewMapState[int64, []B](op.core.runtime(), "interval-join-right")
			op.first, op.second, op.core.onTimer = j.first, j.second, j.cleanUp
			return nil
		})
}

// intervalJoiner buffers each side's records by timestamp. A record of
// the left side at ts can match right records up to ts+upper, so it is
// kept until the watermark reaches ts+max(upper, 0); a right record at ts
// can match left records up to ts-lower, so it is kept until
// ts+max(-lower, 0) (as in Flink). One event-time timer per key and
// cleanup time serves both sides: a timer at t removes the left records at
// t-max(upper, 0) and the right records at t-max(-lower, 0), exactly those
// whose cleanup time is t.
type intervalJoiner[K comparable, A, B, OUT any] struct {
	op           *twoInputOp[K, A, B, OUT]
	lower, upper int64
	join         func(A, B) OUT
	left         MapState[int64, []A]
	right        MapState[int64, []B]
	matches      []int64 // scratch: timestamps of the other side that match
}

// inTime checks a record's timestamp and reports whether it is in time: a
// watermark promises that no record at or below it follows, and the
// buffers are cleaned up on that promise. (Flink keeps a record exactly at
// the watermark, and may then have cleaned up some of its matches.)
func (j *intervalJoiner[K, A, B, OUT]) inTime(ts int64, side string) (bool, error) {
	if ts == NoTimestamp {
		return false, fmt.Errorf("interval join: a record of the %s input has no timestamp: give its source event time with sdk.WithWatermarks", side)
	}
	return ts > j.op.core.wm, nil
}

func (j *intervalJoiner[K, A, B, OUT]) first(a A, ts int64) error {
	if ok, err := j.inTime(ts, "first"); !ok {
		return err
	}
	buf, _ := j.left.Get(ts)
	j.left.Put(ts, append(buf, a))
	j.matches = j.matches[:0]
	for bts := range j.right.All() {
		if bts >= ts+j.lower && bts <= ts+j.upper {
			j.matches = append(j.matches, bts)
		}
	}
	slices.Sort(j.matches)
	for _, bts := range j.matches {
		bs, _ := j.right.Get(bts)
		for _, b := range bs {
			if err := j.op.out.Process(j.join(a, b), max(ts, bts)); err != nil {
				return err
			}
		}
	}
	j.op.core.registerEventTimer(nil, ts+max(j.upper, 0))
	return nil
}

func (j *intervalJoiner[K, A, B, OUT]) second(b B, ts int64) error {
	if ok, err := j.inTime(ts, "second"); !ok {
		return err
	}
	buf, _ := j.right.Get(ts)
	j.right.Put(ts, append(buf, b))
	j.matches = j.matches[:0]
	for ats := range j.left.All() {
		if ats >= ts-j.upper && ats <= ts-j.lower {
			j.matches = append(j.matches, ats)
		}
	}
	slices.Sort(j.matches)
	for _, ats := range j.matches {
		as, _ := j.left.Get(ats)
		for _, a := range as {
			if err := j.op.out.Process(j.join(a, b), max(ts, ats)); err != nil {
				return err
			}
		}
	}
	j.op.core.registerEventTimer(nil, ts+max(-j.lower, 0))
	return nil
}

// cleanUp drops the records whose last possible match the watermark has
// passed.
func (j *intervalJoiner[K, A, B, OUT]) cleanUp(_ string, t int64, _ TimeDomain) error {
	j.left.Remove(t - max(j.upper, 0))
	j.right.Remove(t - max(-j.lower, 0))
	return nil
}
