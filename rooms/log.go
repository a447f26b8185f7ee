package rooms

import (
	"context"
	"log/slog"
)

// quietHandler passes records at or above min, or everything when the
// wrapped handler is enabled at Debug. GossipSub warns about harmless races
// at shutdown (a delivery tag for a topic just left); those stay out of a
// node's log unless it is debugging.
type quietHandler struct {
	slog.Handler
	min slog.Level
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.Handler.Enabled(ctx, slog.LevelDebug) {
		return true
	}
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.min}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.min}
}

// pubsubLogger is the logger handed to GossipSub: errors only, unless
// debugging.
func pubsubLogger(l *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{l.Handler(), slog.LevelError}).With("component", "pubsub")
}
