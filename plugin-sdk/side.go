package sdk

import (
	"fmt"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// OutputTag names a side output of type T: a second stream an operator
// emits besides its main one, such as the records a window received too
// late.
type OutputTag[T any] struct{ id string }

// NewOutputTag returns the tag of a side output.
func NewOutputTag[T any](id string) OutputTag[T] { return OutputTag[T]{id: id} }

// ID returns the tag's name.
func (t OutputTag[T]) ID() string { return t.id }

// SideOutput returns the side output tag of the operator that produced s.
func SideOutput[T, S any](s *Stream[T], tag OutputTag[S]) *Stream[S] {
	if tag.id == "" {
		s.job.errs = append(s.job.errs, fmt.Errorf("side output of %s: the tag has no id", s.v.Name))
	}
	c, err := codec.For[S]()
	if err != nil {
		s.job.errs = append(s.job.errs, fmt.Errorf("side output %q of %s: %w", tag.id, s.v.Name, err))
	} else {
		if s.v.Sides == nil {
			s.v.Sides = map[string]*engine.Type{}
		}
		s.v.Sides[tag.id] = engine.TypeOf(c)
	}
	return &Stream[S]{job: s.job, v: s.v, side: tag.id}
}

// sider is implemented by the contexts of operators that have side outputs.
type sider interface {
	sideOutput(id string) any
	timestamp() int64
}

// sideFailer is implemented by contexts that record a side output's error
// for the operator to return after the function; others get a panic that
// catchSide turns back into the error.
type sideFailer interface {
	sideFailed(err error)
}

// sideError carries an error of a side output through a function that has
// no error to return.
type sideError struct{ err error }

// Emit sends v to the side output tag of the operator whose function ctx
// was passed to, with the timestamp of the record being processed. Records
// for a side output nobody reads are dropped.
func Emit[T any](ctx RuntimeContext, tag OutputTag[T], v T) {
	s, ok := ctx.(sider)
	if !ok {
		panic(fmt.Sprintf("sdk: side output %q: this operator has no side outputs", tag.id))
	}
	out, ok := s.sideOutput(tag.id).(engine.Output[T])
	if !ok {
		return
	}
	if err := out.Process(v, s.timestamp()); err != nil {
		if f, ok := ctx.(sideFailer); ok {
			f.sideFailed(err)
			return
		}
		panic(sideError{err})
	}
}

// catchSide turns the panic Emit raises for a failed side output back into
// the operator's error.
func catchSide(err *error) {
	if r := recover(); r != nil {
		se, ok := r.(sideError)
		if !ok {
			panic(r)
		}
		if *err == nil {
			*err = fmt.Errorf("side output: %w", se.err)
		}
	}
}
