package sdk

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"google.golang.org/protobuf/proto"
)

// Version is the SDK's version, reported to the worker that runs the job.
const Version = "0.1.0"

// DefaultMaxParallelism is the number of key groups of a job that does not
// set one: the most parallel instances a keyed operator can ever have.
const DefaultMaxParallelism = 128

// Job is a job graph under construction. Build it in main and pass it to
// Main. A Job is not safe for concurrent use.
type Job struct {
	name           string
	parallelism    int
	bufferTimeout  time.Duration
	vertices       []*engine.Vertex
	maxParallelism int
	errs           []error
	uids           map[string]bool
	checkpointing  *pluginpb.CheckpointConfig
	restart        *pluginpb.RestartStrategy
	stateBackend   StateBackend
}

// NewJob starts an empty job graph.
func NewJob(name string) *Job {
	return &Job{name: name, maxParallelism: DefaultMaxParallelism, uids: map[string]bool{}}
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// SetMaxParallelism sets the number of key groups: the upper bound of any
// keyed operator's parallelism. It must not change across savepoints.
func (j *Job) SetMaxParallelism(n int) *Job {
	if n < 1 || n > 32768 {
		j.errs = append(j.errs, fmt.Errorf("max parallelism %d: want 1 to 32768", n))
		return j
	}
	j.maxParallelism = n
	return j
}

// SetParallelism sets the job's default parallelism, used by operators
// without WithParallelism when the run does not choose one (eddy run -p,
// EDDY_PARALLELISM).
func (j *Job) SetParallelism(n int) *Job {
	if n < 1 {
		j.errs = append(j.errs, fmt.Errorf("parallelism %d: want at least 1", n))
		return j
	}
	j.parallelism = n
	return j
}

// SetBufferTimeout bounds how long a record waits in a partly filled
// batch before it is sent to the next operator while its task is busy
// (default 5 ms; a task that waits for input sends at once). Lower values
// trade throughput for latency.
func (j *Job) SetBufferTimeout(d time.Duration) *Job {
	if d <= 0 {
		j.errs = append(j.errs, fmt.Errorf("buffer timeout %s: want a positive duration", d))
		return j
	}
	j.bufferTimeout = d
	return j
}

// Defaults of EnableCheckpointing, as in Flink.
const (
	DefaultCheckpointTimeout = 10 * time.Minute
	DefaultCheckpointRetain  = 1
)

// CheckpointOption configures checkpointing (EnableCheckpointing).
type CheckpointOption func(*pluginpb.CheckpointConfig)

// CheckpointTimeout fails a checkpoint that is not complete after d
// (default 10 minutes).
func CheckpointTimeout(d time.Duration) CheckpointOption {
	return func(c *pluginpb.CheckpointConfig) { c.TimeoutMs = d.Milliseconds() }
}

// MinPauseBetweenCheckpoints leaves at least d from the end of one
// checkpoint to the start of the next (default 0), so that a job whose
// checkpoints take long still gets time to process.
func MinPauseBetweenCheckpoints(d time.Duration) CheckpointOption {
	return func(c *pluginpb.CheckpointConfig) { c.MinPauseMs = d.Milliseconds() }
}

// TolerableCheckpointFailures lets n checkpoints in a row fail before the
// job restarts (default 0: the first failure restarts it).
func TolerableCheckpointFailures(n int) CheckpointOption {
	return func(c *pluginpb.CheckpointConfig) { c.TolerableFailures = uint32(max(n, 0)) }
}

// RetainCheckpoints keeps the last n completed checkpoints (default 1).
func RetainCheckpoints(n int) CheckpointOption {
	return func(c *pluginpb.CheckpointConfig) { c.Retain = uint32(max(n, 0)) }
}

// EnableCheckpointing makes the job take a checkpoint every interval: the
// positions of its sources, the state of its operators and the pending
// transactions of its exactly-once sinks, from which it restarts after a
// failure. Checkpointing is off by default.
func (j *Job) EnableCheckpointing(interval time.Duration, opts ...CheckpointOption) *Job {
	c := &pluginpb.CheckpointConfig{
		IntervalMs: interval.Milliseconds(), TimeoutMs: DefaultCheckpointTimeout.Milliseconds(),
		Retain: DefaultCheckpointRetain,
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.IntervalMs < 1:
		j.errs = append(j.errs, fmt.Errorf("checkpoint interval %s: want at least a millisecond", interval))
	case c.TimeoutMs < 1:
		j.errs = append(j.errs, fmt.Errorf("checkpoint timeout %dms: want at least a millisecond", c.TimeoutMs))
	case c.MinPauseMs < 0:
		j.errs = append(j.errs, fmt.Errorf("minimum pause between checkpoints %dms: want 0 or more", c.MinPauseMs))
	case c.Retain < 1:
		j.errs = append(j.errs, errors.New("checkpoints retained: want at least 1"))
	}
	j.checkpointing = c
	return j
}

// RestartStrategy says whether and when a failed job restarts from its
// latest completed checkpoint (FixedDelay, ExponentialBackoff, NoRestart).
type RestartStrategy struct{ pb *pluginpb.RestartStrategy }

// FixedDelay restarts the job up to attempts times (0: without limit),
// delay after each failure; the job fails after that.
func FixedDelay(attempts int, delay time.Duration) RestartStrategy {
	return RestartStrategy{&pluginpb.RestartStrategy{
		Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, MaxAttempts: uint32(max(attempts, 0)), DelayMs: delay.Milliseconds(),
	}}
}

// ExponentialBackoff restarts the job up to attempts times (0: without
// limit), waiting initial after the first failure and multiplier times
// longer after each next one, up to maxDelay.
func ExponentialBackoff(initial, maxDelay time.Duration, multiplier float64, attempts int) RestartStrategy {
	return RestartStrategy{&pluginpb.RestartStrategy{
		Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF, MaxAttempts: uint32(max(attempts, 0)),
		DelayMs: initial.Milliseconds(), MaxDelayMs: maxDelay.Milliseconds(), Multiplier: multiplier,
	}}
}

// NoRestart fails the job at its first failure.
func NoRestart() RestartStrategy {
	return RestartStrategy{&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_NONE}}
}

// SetStateBackend sets where the job's keyed state lives:
// InMemoryStateBackend (the default) or PebbleStateBackend, for state
// larger than memory with incremental checkpoints. Checkpoints restore into
// the backend that took them; savepoints into either.
func (j *Job) SetStateBackend(b StateBackend) *Job {
	j.stateBackend = b
	return j
}

// SetRestartStrategy sets how the job restarts after a failure (default:
// the cluster's).
func (j *Job) SetRestartStrategy(r RestartStrategy) *Job {
	switch {
	case r.pb == nil:
		j.errs = append(j.errs, errors.New("restart strategy: use FixedDelay, ExponentialBackoff or NoRestart"))
	case r.pb.DelayMs < 0 || r.pb.MaxDelayMs < 0:
		j.errs = append(j.errs, errors.New("restart strategy: negative delay"))
	case r.pb.Kind == pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF && r.pb.DelayMs < 1:
		j.errs = append(j.errs, errors.New("restart strategy: exponential backoff needs an initial delay of at least a millisecond"))
	case r.pb.Kind == pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF && r.pb.MaxDelayMs < r.pb.DelayMs:
		j.errs = append(j.errs, fmt.Errorf("restart strategy: maximum delay %dms below the initial %dms", r.pb.MaxDelayMs, r.pb.DelayMs))
	case r.pb.Kind == pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF && r.pb.Multiplier < 1:
		j.errs = append(j.errs, fmt.Errorf("restart strategy: multiplier %g: want at least 1", r.pb.Multiplier))
	}
	j.restart = r.pb
	return j
}

// graph returns the wire form of a plan of the job, with its checkpointing
// and restart strategy.
func (j *Job) graph(p *engine.Plan) *pluginpb.JobGraph {
	g := p.Graph(Version)
	if j.checkpointing != nil {
		g.Checkpointing = proto.Clone(j.checkpointing).(*pluginpb.CheckpointConfig)
	}
	if j.restart != nil {
		g.Restart = proto.Clone(j.restart).(*pluginpb.RestartStrategy)
	}
	return g
}

// Stream is a stream of records of type T in a job graph.
type Stream[T any] struct {
	job  *Job
	v    *engine.Vertex
	part *engine.Edge // how the next operator reads this stream; nil: forward
	side string       // the side output of v this stream is, if any
}

// KeyedStream is a stream partitioned by key: every record with one key
// goes to the same parallel instance, which holds that key's state.
type KeyedStream[K comparable, T any] struct {
	Stream[T]
	key      func(T) K
	keyCodec codec.Codec[K]
}

// Option configures an operator.
type Option func(*options)

type options struct {
	uid         string
	name        string
	parallelism int
	watermarks  any // WatermarkStrategy[T] of a source
}

// WithUID gives an operator its stable id. State in checkpoints and
// savepoints is matched to operators by UID, so every stateful operator
// must have one, and it must not change when the job's code does.
func WithUID(uid string) Option { return func(o *options) { o.uid = uid } }

// WithName gives an operator a display name (default: its UID or kind).
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithParallelism sets how many parallel instances the operator runs
// (default: the job's parallelism).
func WithParallelism(n int) Option { return func(o *options) { o.parallelism = n } }

var uidPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// add registers a vertex producing T.
func add[T any](j *Job, kind string, stateful bool, inputs []engine.Edge, opts []Option,
	build func(tc *engine.TaskContext, out any) (*engine.Operator, error)) *Stream[T] {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if stateful {
		// Keyed operators find the job's state backend in their context.
		inner := build
		build = func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			if j.stateBackend.pebble != nil {
				tc.Ctx = withStateBackend(tc.Ctx, j.stateBackend)
			}
			return inner(tc, out)
		}
	}
	v := &engine.Vertex{
		ID: len(j.vertices), UID: o.uid, Name: o.name, Kind: kind, Parallelism: o.parallelism,
		Inputs: inputs, Stateful: stateful, Build: build,
	}
	if v.Name == "" {
		v.Name = v.UID
	}
	if v.Name == "" {
		v.Name = fmt.Sprintf("%s-%d", kind, v.ID)
	}
	switch {
	case o.uid != "" && !uidPattern.MatchString(o.uid):
		j.errs = append(j.errs, fmt.Errorf("operator %s: uid %q: want 1-128 letters, digits, '.', '_' or '-'", v.Name, o.uid))
	case o.uid != "" && j.uids[o.uid]:
		j.errs = append(j.errs, fmt.Errorf("operator %s: uid %q is used twice", v.Name, o.uid))
	case o.uid == "" && stateful:
		what := "keeps state"
		switch kind {
		case kindSource:
			what = "keeps its read positions in checkpoints"
		case kindSink:
			what = "keeps its pending transactions in checkpoints"
		}
		j.errs = append(j.errs, fmt.Errorf("operator %s (%s) %s and needs a stable uid: add sdk.WithUID(...)", v.Name, kind, what))
	}
	if o.uid != "" {
		j.uids[o.uid] = true
	}
	if o.parallelism < 0 {
		j.errs = append(j.errs, fmt.Errorf("operator %s: parallelism %d", v.Name, o.parallelism))
	}
	for _, in := range inputs {
		if in.From == nil {
			j.errs = append(j.errs, fmt.Errorf("operator %s: input from another job or a nil stream", v.Name))
		}
	}
	j.vertices = append(j.vertices, v)
	s := &Stream[T]{job: j, v: v}
	if kind != kindSink {
		c, err := codec.For[T]()
		if err != nil {
			j.errs = append(j.errs, fmt.Errorf("operator %s: %w", v.Name, err))
		} else {
			v.Out = engine.TypeOf(c)
		}
	}
	return s
}

func forward[T any](s *Stream[T]) engine.Edge {
	return engine.Edge{From: s.v, Partitioning: pluginpb.Partitioning_PARTITIONING_FORWARD}
}

// Operator kinds, as the job graph names them.
const (
	kindSource       = "source"
	kindMap          = "map"
	kindFlatMap      = "flat_map"
	kindFilter       = "filter"
	kindReduce       = "reduce"
	kindKeyedProcess = "keyed_process"
	kindUnion        = "union"
	kindSink         = "sink"
)

// plan resolves the graph for a run with the given default parallelism.
func (j *Job) plan(parallelism int) (*engine.Plan, error) {
	if len(j.errs) > 0 {
		return nil, joinErrs(j.errs)
	}
	if len(j.vertices) == 0 {
		return nil, fmt.Errorf("job %s has no operators", j.name)
	}
	// Plans change vertices (resolved parallelism), so work on copies.
	vs := make([]*engine.Vertex, len(j.vertices))
	byOld := map[*engine.Vertex]*engine.Vertex{}
	for i, v := range j.vertices {
		c := *v
		c.Inputs = append([]engine.Edge(nil), v.Inputs...)
		for k := range c.Inputs {
			c.Inputs[k].From = byOld[c.Inputs[k].From]
		}
		vs[i] = &c
		byOld[v] = &c
	}
	p, err := engine.NewPlan(j.name, vs, parallelism, j.maxParallelism)
	if err != nil {
		return nil, err
	}
	p.FlushInterval = j.bufferTimeout
	return p, nil
}

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msg := fmt.Sprintf("%d problems:", len(errs))
	for _, e := range errs {
		msg += "\n  - " + e.Error()
	}
	return fmt.Errorf("%s", msg)
}
