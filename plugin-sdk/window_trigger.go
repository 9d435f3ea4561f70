package sdk

import "fmt"

// TriggerResult is what a trigger decides for a window.
type TriggerResult int

// The decisions of a trigger, as in Flink.
const (
	// Continue does nothing.
	Continue TriggerResult = iota
	// Fire emits the window's result and keeps its contents, so that a
	// later firing includes them again.
	Fire
	// Purge drops the window's contents without emitting them.
	Purge
	// FireAndPurge emits the window's result, then drops its contents.
	FireAndPurge
)

func (r TriggerResult) fires() bool  { return r == Fire || r == FireAndPurge }
func (r TriggerResult) purges() bool { return r == Purge || r == FireAndPurge }

func (r TriggerResult) String() string {
	switch r {
	case Continue:
		return "Continue"
	case Fire:
		return "Fire"
	case Purge:
		return "Purge"
	case FireAndPurge:
		return "FireAndPurge"
	}
	return fmt.Sprintf("TriggerResult(%d)", int(r))
}

// Trigger decides when a window emits its result. The window operator calls
// it for every record added to a window (OnElement) and for every timer the
// trigger registered through its context (OnEventTime, OnProcessingTime).
// The window's end of life is the operator's business: when the watermark
// (or, for processing-time windows, the clock) passes the window's
// MaxTimestamp plus the allowed lateness, the operator calls Clear and
// drops the window's contents and trigger state.
//
// One trigger value serves every key and window of an operator, and all its
// parallel instances (a pointer to a struct is copied per instance, as
// functions are): keep per-window state in the context (State, SetState),
// not in the trigger's fields. Its methods are called from the instance's
// goroutine only.
type Trigger interface {
	// OnElement is called for every record added to w, with the record's
	// timestamp (for processing-time windows, the time it arrived).
	OnElement(ctx TriggerContext, ts int64, w Window) TriggerResult
	// OnEventTime is called when an event-time timer registered for w fires.
	OnEventTime(ctx TriggerContext, time int64, w Window) TriggerResult
	// OnProcessingTime is called when a processing-time timer registered for
	// w fires.
	OnProcessingTime(ctx TriggerContext, time int64, w Window) TriggerResult
	// Clear deletes the timers the trigger registered for w; the window is
	// gone.
	Clear(ctx TriggerContext, w Window)
}

// MergingTrigger is implemented by triggers that can be used with session
// windows. When windows merge, their trigger state is added up into the
// merged window's (so counts carry over), OnMerge is called for the merged
// window, and Clear for each window that was merged into it.
type MergingTrigger interface {
	Trigger
	// OnMerge registers what w needs now that others were merged into it.
	OnMerge(ctx TriggerContext, w Window)
}

// TriggerContext is what a trigger sees of the window operator, scoped to
// the current key and window.
type TriggerContext interface {
	// CurrentWatermark is the operator's event time, MinWatermark at first.
	CurrentWatermark() int64
	// CurrentProcessingTime is the wall clock in milliseconds.
	CurrentProcessingTime() int64
	// RegisterEventTimeTimer asks for OnEventTime when the watermark reaches
	// ts; registering one time twice fires once.
	RegisterEventTimeTimer(ts int64)
	DeleteEventTimeTimer(ts int64)
	// RegisterProcessingTimeTimer asks for OnProcessingTime when the clock
	// reaches ts.
	RegisterProcessingTimeTimer(ts int64)
	DeleteProcessingTimeTimer(ts int64)
	// State returns the trigger's value called name for the current key and
	// window; 0 when it was never set.
	State(name string) int64
	// SetState sets it; setting 0 removes it.
	SetState(name string, v int64)
}

// EventTimeTrigger fires a window once when the watermark passes its
// MaxTimestamp, and again for every record that arrives later but within
// the allowed lateness. It is the default trigger of event-time windows.
func EventTimeTrigger() Trigger { return eventTimeTrigger{} }

type eventTimeTrigger struct{}

func (eventTimeTrigger) OnElement(ctx TriggerContext, _ int64, w Window) TriggerResult {
	if w.MaxTimestamp() <= ctx.CurrentWatermark() {
		// A late record within the allowed lateness: fire the update now.
		return Fire
	}
	ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	return Continue
}

func (eventTimeTrigger) OnEventTime(_ TriggerContext, time int64, w Window) TriggerResult {
	if time == w.MaxTimestamp() {
		return Fire
	}
	return Continue
}

func (eventTimeTrigger) OnProcessingTime(TriggerContext, int64, Window) TriggerResult {
	return Continue
}

func (eventTimeTrigger) Clear(ctx TriggerContext, w Window) {
	ctx.DeleteEventTimeTimer(w.MaxTimestamp())
}

func (eventTimeTrigger) OnMerge(ctx TriggerContext, w Window) {
	if w.MaxTimestamp() > ctx.CurrentWatermark() {
		ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	}
}

func (eventTimeTrigger) String() string { return "EventTimeTrigger" }

// ProcessingTimeTrigger fires a window when the wall clock passes its
// MaxTimestamp. It is the default trigger of processing-time windows.
func ProcessingTimeTrigger() Trigger { return processingTimeTrigger{} }

type processingTimeTrigger struct{}

func (processingTimeTrigger) OnElement(ctx TriggerContext, _ int64, w Window) TriggerResult {
	ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
	return Continue
}

func (processingTimeTrigger) OnEventTime(TriggerContext, int64, Window) TriggerResult {
	return Continue
}

func (processingTimeTrigger) OnProcessingTime(TriggerContext, int64, Window) TriggerResult {
	return Fire
}

func (processingTimeTrigger) Clear(ctx TriggerContext, w Window) {
	ctx.DeleteProcessingTimeTimer(w.MaxTimestamp())
}

func (processingTimeTrigger) OnMerge(ctx TriggerContext, w Window) {
	if w.MaxTimestamp() > ctx.CurrentProcessingTime() {
		ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
	}
}

func (processingTimeTrigger) String() string { return "ProcessingTimeTrigger" }

// CountTrigger fires a window every n records, keeping its contents, as
// Flink's CountTrigger: with GlobalWindows the results are cumulative. Wrap
// it in PurgingTrigger for windows of n records each.
func CountTrigger(n int64) Trigger { return countTrigger{n: n} }

type countTrigger struct{ n int64 }

const countState = "count"

func (t countTrigger) OnElement(ctx TriggerContext, _ int64, _ Window) TriggerResult {
	c := ctx.State(countState) + 1
	if c >= t.n {
		ctx.SetState(countState, 0)
		return Fire
	}
	ctx.SetState(countState, c)
	return Continue
}

func (countTrigger) OnEventTime(TriggerContext, int64, Window) TriggerResult      { return Continue }
func (countTrigger) OnProcessingTime(TriggerContext, int64, Window) TriggerResult { return Continue }
func (countTrigger) Clear(ctx TriggerContext, _ Window)                           { ctx.SetState(countState, 0) }

// OnMerge has nothing to do: the counts of merged windows were added up.
func (countTrigger) OnMerge(TriggerContext, Window) {}

func (t countTrigger) String() string { return fmt.Sprintf("CountTrigger(%d)", t.n) }

// PurgingTrigger turns every Fire of t into FireAndPurge, so that each
// firing emits only what arrived since the previous one.
func PurgingTrigger(t Trigger) Trigger {
	if m, ok := t.(MergingTrigger); ok {
		return mergingPurgingTrigger{purgingTrigger{t}, m}
	}
	return purgingTrigger{t}
}

type purgingTrigger struct{ t Trigger }

func purge(r TriggerResult) TriggerResult {
	if r == Fire {
		return FireAndPurge
	}
	return r
}

func (p purgingTrigger) OnElement(ctx TriggerContext, ts int64, w Window) TriggerResult {
	return purge(p.t.OnElement(ctx, ts, w))
}

func (p purgingTrigger) OnEventTime(ctx TriggerContext, time int64, w Window) TriggerResult {
	return purge(p.t.OnEventTime(ctx, time, w))
}

func (p purgingTrigger) OnProcessingTime(ctx TriggerContext, time int64, w Window) TriggerResult {
	return purge(p.t.OnProcessingTime(ctx, time, w))
}

func (p purgingTrigger) Clear(ctx TriggerContext, w Window) { p.t.Clear(ctx, w) }

func (p purgingTrigger) String() string { return fmt.Sprintf("PurgingTrigger(%v)", p.t) }

type mergingPurgingTrigger struct {
	purgingTrigger
	m MergingTrigger
}

func (p mergingPurgingTrigger) OnMerge(ctx TriggerContext, w Window) { p.m.OnMerge(ctx, w) }
