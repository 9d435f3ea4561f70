package netx

import (
	"errors"
	"fmt"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// frameOverhead bounds what a Frame adds to the records it carries: two tags,
// a length and a count.
const frameOverhead = 16

func channelToWire(k engine.ChannelKey) *pluginpb.Channel {
	return &pluginpb.Channel{
		JobId: k.JobID, Attempt: k.Attempt,
		FromChain: uint32(k.FromChain), FromSubtask: uint32(k.FromSubtask),
		ToChain: uint32(k.ToChain), ToSubtask: uint32(k.ToSubtask),
		ToVertex: uint32(k.ToVertex), ToInput: uint32(k.ToInput),
	}
}

func channelFromWire(c *pluginpb.Channel) engine.ChannelKey {
	return engine.ChannelKey{
		JobID: c.GetJobId(), Attempt: c.GetAttempt(),
		FromChain: int(c.GetFromChain()), FromSubtask: int(c.GetFromSubtask()),
		ToChain: int(c.GetToChain()), ToSubtask: int(c.GetToSubtask()),
		ToVertex: int(c.GetToVertex()), ToInput: int(c.GetToInput()),
	}
}

// channelName is how errors and logs name a channel.
func channelName(k engine.ChannelKey) string {
	return fmt.Sprintf("%s/%d chain-%d/%d -> chain-%d/%d (vertex %d input %d)",
		k.JobID, k.Attempt, k.FromChain, k.FromSubtask, k.ToChain, k.ToSubtask, k.ToVertex, k.ToInput)
}

func eventToWire(ev engine.Event) (*pluginpb.Event, error) {
	switch ev.Kind {
	case engine.EventWatermark:
		return &pluginpb.Event{Kind: &pluginpb.Event_Watermark{Watermark: ev.Value}}, nil
	case engine.EventBarrier:
		return &pluginpb.Event{Kind: &pluginpb.Event_Barrier{Barrier: uint64(ev.Value)}}, nil
	case engine.EventEnd:
		return &pluginpb.Event{Kind: &pluginpb.Event_EndOfInput{EndOfInput: true}, EndReason: uint32(ev.Value)}, nil
	case engine.EventIdle:
		return &pluginpb.Event{Kind: &pluginpb.Event_Idle{Idle: ev.Value != 0}}, nil
	}
	return nil, fmt.Errorf("unknown event kind %d", ev.Kind)
}

func eventFromWire(e *pluginpb.Event) (engine.Event, error) {
	switch k := e.GetKind().(type) {
	case *pluginpb.Event_Watermark:
		return engine.Event{Kind: engine.EventWatermark, Value: k.Watermark}, nil
	case *pluginpb.Event_Barrier:
		return engine.Event{Kind: engine.EventBarrier, Value: int64(k.Barrier)}, nil
	case *pluginpb.Event_EndOfInput:
		if !k.EndOfInput {
			return engine.Event{}, errors.New("end_of_input event set to false")
		}
		return engine.Event{Kind: engine.EventEnd, Value: int64(e.GetEndReason())}, nil
	case *pluginpb.Event_Idle:
		v := int64(0)
		if k.Idle {
			v = 1
		}
		return engine.Event{Kind: engine.EventIdle, Value: v}, nil
	}
	return engine.Event{}, errors.New("event of no known kind")
}
