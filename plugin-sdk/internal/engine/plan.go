package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// Plan is a job's vertices with their parallelism resolved and fused into
// chains.
type Plan struct {
	JobName        string
	Vertices       []*Vertex
	Chains         []*Chain
	MaxParallelism int
	// FlushInterval bounds how long a record waits in a partly filled
	// batch; 0 means DefaultFlushInterval.
	FlushInterval time.Duration

	chainOf map[int]*Chain // vertex id -> chain
	next    map[int]*Vertex
}

// Chain is a run of vertices executed in one task.
type Chain struct {
	ID          int
	Vertices    []*Vertex
	Parallelism int
	// Inputs are the edges into the head from other chains.
	Inputs []ChainInput
}

// ChainInput is an edge from another chain into a chain's head.
type ChainInput struct {
	From      *Chain
	FromVtx   *Vertex
	To        *Vertex
	Input     int // index of the edge among To's inputs
	Edge      *Edge
	Forwarded bool // one channel from the same subtask, else one per producer subtask
}

// NewPlan resolves parallelism (0 means defaultParallelism) and fuses
// vertices into chains: a vertex joins its producer's chain when it has
// that one input, over a forward edge (or any edge between two vertices of
// parallelism 1), with equal parallelism, and the producer has no other
// chained successor. Vertices must be listed producers first.
func NewPlan(jobName string, vertices []*Vertex, defaultParallelism, maxParallelism int) (*Plan, error) {
	if defaultParallelism < 1 {
		return nil, fmt.Errorf("parallelism %d: want at least 1", defaultParallelism)
	}
	if maxParallelism < 1 {
		return nil, fmt.Errorf("max parallelism %d: want at least 1", maxParallelism)
	}
	p := &Plan{JobName: jobName, Vertices: vertices, MaxParallelism: maxParallelism,
		chainOf: map[int]*Chain{}, next: map[int]*Vertex{}}
	par := func(v *Vertex) int {
		if v.Parallelism > 0 {
			return v.Parallelism
		}
		return defaultParallelism
	}
	for i, v := range vertices {
		if v.ID != i {
			return nil, fmt.Errorf("vertex %q has id %d at position %d", v.Name, v.ID, i)
		}
		if v.Parallelism == 0 {
			v.Parallelism = defaultParallelism
		}
		if v.Parallelism > maxParallelism {
			return nil, fmt.Errorf("operator %q: parallelism %d exceeds max parallelism %d", v.Name, v.Parallelism, maxParallelism)
		}
		for k := range v.Inputs {
			e := &v.Inputs[k]
			if e.From.ID >= v.ID {
				return nil, fmt.Errorf("operator %q reads from a later operator %q", v.Name, e.From.Name)
			}
			if e.Partitioning == pluginpb.Partitioning_PARTITIONING_FORWARD && par(e.From) != v.Parallelism {
				// As in Flink: a default edge between operators of different
				// parallelism spreads records round robin.
				e.Partitioning = pluginpb.Partitioning_PARTITIONING_REBALANCE
			}
		}
		if len(v.Inputs) == 1 {
			e := v.Inputs[0]
			from := e.From
			samePar := from.Parallelism == v.Parallelism
			forwardish := e.Partitioning == pluginpb.Partitioning_PARTITIONING_FORWARD ||
				(from.Parallelism == 1 && v.Parallelism == 1 && e.Partitioning != pluginpb.Partitioning_PARTITIONING_BROADCAST)
			if samePar && forwardish && e.Side == "" && from.Out != nil && p.next[from.ID] == nil {
				c := p.chainOf[from.ID]
				c.Vertices = append(c.Vertices, v)
				p.chainOf[v.ID] = c
				p.next[from.ID] = v
				continue
			}
		}
		c := &Chain{ID: len(p.Chains), Vertices: []*Vertex{v}, Parallelism: v.Parallelism}
		p.Chains = append(p.Chains, c)
		p.chainOf[v.ID] = c
		for k := range v.Inputs {
			e := &v.Inputs[k]
			c.Inputs = append(c.Inputs, ChainInput{
				From: p.chainOf[e.From.ID], FromVtx: e.From, To: v, Input: k, Edge: e,
				Forwarded: e.Partitioning == pluginpb.Partitioning_PARTITIONING_FORWARD,
			})
		}
	}
	return p, nil
}

func (p *Plan) flushInterval() time.Duration {
	if p.FlushInterval > 0 {
		return p.FlushInterval
	}
	return DefaultFlushInterval
}

// ChainOf returns the chain a vertex belongs to.
func (p *Plan) ChainOf(v *Vertex) *Chain { return p.chainOf[v.ID] }

// Next returns the vertex chained after v, or nil.
func (p *Plan) Next(v *Vertex) *Vertex { return p.next[v.ID] }

// Consumers returns the edges that leave v for other chains.
func (p *Plan) Consumers(v *Vertex) []ChainInput {
	var out []ChainInput
	for _, c := range p.Chains {
		for _, in := range c.Inputs {
			if in.FromVtx == v {
				out = append(out, in)
			}
		}
	}
	return out
}

// Name of a chain: its vertices' names joined by arrows.
func (c *Chain) Name() string {
	var names []string
	for _, v := range c.Vertices {
		names = append(names, v.Name)
	}
	return strings.Join(names, " -> ")
}

// Graph returns the wire form of the plan.
func (p *Plan) Graph(sdkVersion string) *pluginpb.JobGraph {
	g := &pluginpb.JobGraph{Name: p.JobName, MaxParallelism: uint32(p.MaxParallelism), SdkVersion: sdkVersion}
	for _, v := range p.Vertices {
		pv := &pluginpb.Vertex{
			Id: uint32(v.ID), Uid: v.UID, Name: v.Name, Kind: v.Kind, Parallelism: uint32(v.Parallelism),
			Stateful: v.Stateful, Chain: uint32(p.chainOf[v.ID].ID),
		}
		for _, e := range v.Inputs {
			pv.Inputs = append(pv.Inputs, &pluginpb.Edge{From: uint32(e.From.ID), Partitioning: e.Partitioning})
		}
		g.Vertices = append(g.Vertices, pv)
	}
	for _, c := range p.Chains {
		pc := &pluginpb.Chain{Id: uint32(c.ID), Parallelism: uint32(c.Parallelism), Name: c.Name()}
		for _, v := range c.Vertices {
			pc.Vertices = append(pc.Vertices, uint32(v.ID))
		}
		for _, in := range c.Inputs {
			pc.Inputs = append(pc.Inputs, &pluginpb.ChainEdge{
				FromChain: uint32(in.From.ID), FromVertex: uint32(in.FromVtx.ID), ToVertex: uint32(in.To.ID),
				Partitioning: in.Edge.Partitioning,
			})
		}
		g.Chains = append(g.Chains, pc)
	}
	return g
}
