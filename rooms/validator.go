package rooms

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// incoming is the ValidatorData of an accepted message: its checked
// envelope and signed author.
type incoming struct {
	env    envelope
	author peer.ID
	// recEnv and rec are the verified signed peer record of a presence
	// that carries one (never set for own messages).
	recEnv *record.Envelope
	rec    *peer.PeerRecord
	// signed is the message as its author signed it, for chat lines and
	// presence (kept for the sync); set on delivery, off the validator's
	// path.
	signed []byte
}

func (in *incoming) item() item {
	return item{ts: uint64(max(in.env.sentAt.UnixMilli(), 0)), id: itemID(in.author, in.env.id)} // #nosec G115 -- not negative
}

// outgoing is the ValidatorData of a local publish: the envelope as built
// (so it is not decoded or opened again), and the verdict and GossipSub
// sequence number, which the publisher reads after Publish returns.
type outgoing struct {
	env   envelope
	v     verdict
	seqno string
}

// validator returns the topic validator of r. It runs before delivery and
// before forwarding, for received and for locally published messages.
func (s *Service) validator(r *room) pubsub.ValidatorEx {
	return func(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		out, _ := msg.ValidatorData.(*outgoing)
		v := s.validate(r, msg, out)
		if out != nil {
			out.v = v
			out.seqno = string(msg.GetSeqno())
		}
		if v.result != pubsub.ValidationAccept {
			if out == nil {
				s.keep(r, msg, v.reason, time.Now())
			}
			s.log.Debug("room message refused", "room", r.name, "from", msg.GetFrom(), "via", msg.ReceivedFrom, "reason", v.reason)
		}
		if h := s.cfg.testHookVerdict; h != nil {
			h(r.topicName, msg.GetFrom(), v)
		}
		return v.result
	}
}

func (s *Service) validate(r *room, msg *pubsub.Message, out *outgoing) verdict {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		return ignore(reasonClosed)
	}
	author := msg.GetFrom()
	if author == "" || msg.Signature == nil {
		// StrictSign makes pubsub refuse these before us; stay safe anyway.
		return reject(reasonAuthor)
	}
	if s.shedBehindNow(r, author) {
		return ignore(reasonShed)
	}
	var env envelope
	var recEnv *record.Envelope
	var rec *peer.PeerRecord
	if out != nil && msg.ReceivedFrom == s.self && author == s.self {
		env = out.env
	} else {
		var v verdict
		env, v = s.decode(r, author, msg.Data)
		if v.result != pubsub.ValidationAccept {
			return v
		}
		if len(env.record) > 0 {
			var err error
			if recEnv, rec, err = verifyPeerRecord(env.record, author); err != nil {
				return reject(reasonRecord)
			}
		}
	}
	now := s.wallNow()
	if author != s.self {
		s.observeClock(author, env.sentAt, now)
	}
	if d := now.Sub(env.sentAt); d > s.cfg.MaxClockSkew || d < -s.cfg.MaxClockSkew {
		return ignore(reasonSkew)
	}
	k := replayKey{author: author, id: env.id}
	if s.replay.has(k) {
		return ignore(reasonReplay)
	}
	if ok, flooding := s.limits.take(r.topicName, author, env.kind == pb.Kind_KIND_PRESENCE, now); !ok {
		if (flooding || s.shed.flooded(author, now)) && msg.ReceivedFrom == author {
			// Attributable: the author itself sends us far past its
			// limit. Its score falls (invalid deliveries).
			return reject(reasonFlood)
		}
		return ignore(reasonRate)
	}
	if ok, reason := s.replay.mark(k, r.topicName, s.replayExpiry(env), now); !ok {
		return ignore(reason)
	}
	msg.ValidatorData = &incoming{env: env, author: author, recEnv: recEnv, rec: rec}
	return accept()
}

// decode checks the size, opens a private room's Sealed, and decodes the
// envelope.
func (s *Service) decode(r *room, author peer.ID, data []byte) (envelope, verdict) {
	if len(data) > MaxMessageSize {
		return envelope{}, reject(reasonOversize)
	}
	if !r.private {
		return decodeEnvelope(data)
	}
	var sealed pb.Sealed
	if err := proto.Unmarshal(data, &sealed); err != nil {
		return envelope{}, reject(reasonUndecodable)
	}
	plain, v := s.openSealed(r, author, &sealed)
	if v.result != pubsub.ValidationAccept {
		return envelope{}, v
	}
	env, v := decodeEnvelope(plain)
	if v.result != pubsub.ValidationAccept {
		return env, v
	}
	return env, s.admit(r, author, sealed.Epoch, &env)
}

// encode is the inverse of decode for a local publish.
func (s *Service) encode(r *room, env *envelope) ([]byte, error) {
	plain, err := env.marshal()
	if err != nil {
		return nil, err
	}
	if !r.private {
		return plain, nil
	}
	return s.sealFor(r, env, plain)
}

func (s *Service) replayExpiry(env envelope) time.Time {
	return env.sentAt.Add(s.cfg.MaxClockSkew + replayMargin)
}
