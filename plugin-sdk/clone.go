package sdk

import "reflect"

// instance returns the copy of a user function object that one parallel
// instance of an operator uses, so that instances never share the fields
// (state handles, buffers) a function sets in Open. A pointer to a struct
// is copied shallowly, as if the function had been serialised and shipped
// to each instance the way Flink does; any other value is used as it is.
func instance[F any](f F) F {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return f
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	out, ok := c.Interface().(F)
	if !ok {
		return f
	}
	return out
}
