// Package dm implements Parley's private messages: the /parley/dm/1.0.0
// protocol over direct libp2p streams, with acknowledgements, exactly-once
// display, an outbox that survives restarts, and expiry.
//
// # Protocol
//
// The sender opens a stream to the recipient and writes Message frames;
// the recipient answers each with one Ack frame, in order. Frames are
// unsigned-varint length-prefixed protobuf (dm/pb/dm.proto); a recipient
// reads at most MaxFrameSize bytes per frame and checks the length before
// allocating, a sender reads at most MaxAckSize. At most
// MaxMessagesPerStream messages travel on one stream; the sender then
// closes its side and the recipient closes the stream.
//
//	sender                              recipient
//	  | -- Message{id, text, nick, sent_at_ms} -->|  check, store (dedup by
//	  |                                           |  sender peer ID + id)
//	  | <-- Ack{id, STORED | REJECTED | BUSY} ----|
//
// The sender of a message is the stream's authenticated remote peer ID;
// the frame has no sender field, and the nick in it is display-only.
// Confidentiality and integrity come from the connection's Noise (or TLS)
// channel, which stays end to end through circuit relays, so messages may
// travel over relayed (limited) connections.
//
// # Delivery
//
// Send stores the message in the outbox ("dm/outbox" bucket, with the
// recipient's known addresses) and reports "queued". A worker per
// recipient opens a stream (dialing if needed), writes the message
// ("sent") and waits for the ack: STORED means the recipient has it in
// durable storage ("delivered"); REJECTED is final ("failed" with the
// reason); BUSY, a missing ack or any stream failure leaves the message
// queued. Retries back off exponentially (Config.RetryMin..RetryMax, with
// jitter); a new connection to the recipient retries at once, and so does
// the recipient starting to speak the protocol on a connection (an
// identify push: a node that is starting may connect before its handler
// is registered). Such a retry is not lost when an attempt was already
// under way: if that attempt fails, the next one is due at once. After a
// restart New re-adds the stored addresses to the peerstore and resumes.
// A message not delivered within Config.TTL (default 7 days) fails with
// ErrExpired.
//
// A recipient stores every new message in "dm/inbox" keyed by (sender,
// id) before acknowledging it, and reports a dm event only the first
// time: a message retransmitted because its ack was lost is acknowledged
// again but not shown twice, also across restarts. Records are kept for
// Config.MaxMessageAge (default 30 days, longer than any sender's TTL),
// and messages whose sent_at is older than that are rejected, so an old
// message can never come back.
//
// # Abuse
//
// Undecodable frames, bad ids and oversize length prefixes reset the
// stream; so does a frame that is not complete within Config.StreamTimeout
// of the previous one (a peer trickling a byte a minute), and a stream
// beyond Config.MaxStreamsPerPeer or MaxInboundStreams. Each case is
// counted (Counters). Messages beyond a peer's rate (Config.PeerRate,
// PeerBurst) are answered BUSY. Other peers are served throughout.
package dm
