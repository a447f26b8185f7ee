// Package events defines the events a Parley node reports to its user
// interface, and their JSON form.
//
// The JSON form is a contract that scripts and bots rely on (documented in
// docs/EVENTS.md): every event is one JSON object with a "type" field naming
// it and the event's fields beside it. Fields are only ever added, never
// renamed or removed.
//
// Services report events through an Emitter; the node's Queue is the usual
// one. Emit never blocks, so services may call it from any goroutine,
// including stream handlers and pubsub loops.
package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Event is anything a node reports. Type returns the value of the JSON
// "type" field.
type Event interface {
	Type() string
}

// Emitter receives events. Implementations must not block.
type Emitter interface {
	Emit(Event)
}

// EmitterFunc adapts a function to the Emitter interface.
type EmitterFunc func(Event)

// Emit calls f(e).
func (f EmitterFunc) Emit(e Event) { f(e) }

// Discard is an Emitter that drops every event.
var Discard Emitter = EmitterFunc(func(Event) {})

// MarshalJSON encodes e as one JSON object whose first field is "type".
func MarshalJSON(e Event) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type(), err)
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("encode %s event: not a JSON object", e.Type())
	}
	typ, err := json.Marshal(e.Type())
	if err != nil {
		return nil, fmt.Errorf("encode %s event type: %w", e.Type(), err)
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(typ) + 10)
	b.WriteString(`{"type":`)
	b.Write(typ)
	if len(body) > 2 {
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}
