package events

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DM is reported once for every direct message received, after it was
// stored (a retransmission of a message already stored is not reported
// again). From is the authenticated peer ID of the sender; Nick is the
// nick the sender claims, display-only and possibly empty.
type DM struct {
	ID     string    `json:"id"`
	From   peer.ID   `json:"from"`
	Nick   string    `json:"nick"`
	Text   string    `json:"text"`
	SentAt time.Time `json:"sent_at"`
	// Via is set when the message did not come over a direct stream: the
	// peer ID of the holder it was picked up from (a sealed deposit).
	Via string `json:"via,omitempty"`
}

// DM delivery states reported in DMStatus.State.
const (
	DMQueued    = "queued"
	DMSent      = "sent"
	DMDelivered = "delivered"
	DMFailed    = "failed"
)

// Why a pending direct message waits, reported in DMStatus.Reason.
const (
	// DMWaitNoAddress: not connected to the recipient and no address of
	// it is known.
	DMWaitNoAddress = "no_address"
	// DMWaitDialFailed: the recipient's known addresses refused the
	// connection, were unreachable or did not answer (it is most likely
	// offline).
	DMWaitDialFailed = "dial_failed"
	// DMWaitBusy: the recipient answered but asked to retry later (rate
	// or storage limit).
	DMWaitBusy = "busy"
	// DMWaitInterrupted: the stream to the recipient broke before it
	// acknowledged the messages.
	DMWaitInterrupted = "interrupted"
	// DMWaitDeposited: the recipient is offline; a sealed copy was left
	// with a holder it reads from (DMStatus.Via), to be picked up when it
	// comes online. The message stays in the outbox until a receipt.
	DMWaitDeposited = "deposited"
)

// DMStatus reports a state change of an outgoing direct message: queued
// (stored in the outbox), sent (written to a stream, not yet
// acknowledged), delivered (the recipient acknowledged that it stored the
// message) or failed (Error says why: expired, rejected by the recipient).
//
// A pending message (queued or sent) that waits also gets a DMStatus with
// its state unchanged and Reason set (one of the DMWait* reasons) when the
// reason it waits for changes; Detail says it for people in one line.
type DMStatus struct {
	ID     string  `json:"id"`
	To     peer.ID `json:"to"`
	State  string  `json:"state"`
	Error  string  `json:"error,omitempty"`
	Reason string  `json:"reason,omitempty"`
	Detail string  `json:"detail,omitempty"`
	// Via says how a message went: with State delivered, DMViaDirect or
	// the peer ID of the holder the recipient picked it up from; with
	// Reason DMWaitDeposited, the holder that took the sealed copy.
	Via string `json:"via,omitempty"`
}

// DMViaDirect is DMStatus.Via of a message delivered over a direct stream.
const DMViaDirect = "direct"

// TrustWarning is reported when a peer claims a nick that is pinned to
// another peer's key: either an impostor or the owner with a new key. The
// pin is not changed; the user compares safety numbers (/verify) and
// decides (/trust moves the pin).
type TrustWarning struct {
	PeerID       peer.ID `json:"peer_id"`
	Nick         string  `json:"nick"`
	PinnedPeerID peer.ID `json:"pinned_peer_id"`
	Text         string  `json:"text"`
}

// MailboxPickup is reported when the node picked up its mailbox at a
// holder (package mailbox): the first time per holder in a run, and
// whenever deposits were waiting there. Items counts the deposits handled
// (messages, receipts, and deposits that did not open and were dropped).
type MailboxPickup struct {
	Holder peer.ID `json:"holder"`
	Items  int     `json:"items"`
}

func (MailboxPickup) Type() string { return "mailbox_pickup" }

func (DM) Type() string           { return "dm" }
func (DMStatus) Type() string     { return "dm_status" }
func (TrustWarning) Type() string { return "trust_warning" }
