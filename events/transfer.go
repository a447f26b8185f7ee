package events

import "github.com/libp2p/go-libp2p/core/peer"

// File transfer events (package transfer; see docs/EVENTS.md).
// TransferID is the transfer's id, 32 hex digits, the same on both sides.
// Direction is "send" on the sending node and "receive" on the receiving
// node; Peer is the other side's peer ID.

// FileOffer is reported on the recipient when a peer offers a file, or
// when a file is shared in a room (Room set); answer with /accept or
// /reject, or /fetch for a room share. Name is already reduced to a safe
// base name.
type FileOffer struct {
	TransferID string  `json:"transfer_id"`
	From       peer.ID `json:"from"`
	Name       string  `json:"name"`
	Size       int64   `json:"size"`
	Room       string  `json:"room,omitempty"`
}

// FileHashing is reported on the sending node while it hashes a file
// before offering it (/send) or announcing it in a room (/share): once
// with Bytes 0 when hashing starts, then at most a few times per second,
// and last with Bytes equal to Size once the whole file is hashed (the
// offer or announcement follows). Direction is always "send"; Peer is the
// recipient, and empty (absent in JSON) for a room share.
type FileHashing struct {
	TransferID string  `json:"transfer_id"`
	Name       string  `json:"name"`
	Bytes      int64   `json:"bytes"`
	Size       int64   `json:"size"`
	Direction  string  `json:"direction"`
	Peer       peer.ID `json:"peer,omitempty"`
}

// FileProgress is reported on both sides while chunks move, at most a few
// times per second per transfer. Bytes counts verified bytes at the
// recipient; Rate is in bytes per second. Once more, with Waiting set and
// Rate 0, when the transfer is interrupted (the other side vanished or
// the connection broke): it resumes on reconnection or /resume.
type FileProgress struct {
	TransferID string  `json:"transfer_id"`
	Bytes      int64   `json:"bytes"`
	Size       int64   `json:"size"`
	Rate       int64   `json:"rate"`
	Direction  string  `json:"direction"`
	Peer       peer.ID `json:"peer"`
	// Waiting: interrupted, waiting for the other side; omitted when
	// false.
	Waiting bool `json:"waiting,omitempty"`
	// Code, on a waiting progress, says why when the cause is this
	// node's own: WaitNoSpace or WaitDisk (the transfer is tried again
	// only on /resume or the peer's next connection: free space or fix
	// the disk, then /resume). Empty for an interruption by the other
	// side or the network.
	Code string `json:"code,omitempty"`
	// Reason, on a waiting progress, is the human-readable error that
	// interrupted the transfer, when known.
	Reason string `json:"reason,omitempty"`
	// Holders, on the recipient of a file shared in a room (/fetch), is
	// how many members it is pulling the file from at the moment, in
	// parallel (the sharer and members that fetched it before); omitted
	// when 0 (a direct transfer, or no holder connected).
	Holders int `json:"holders,omitempty"`
}

// Codes of a waiting FileProgress (Code).
const (
	WaitNoSpace = "no_space" // this node's disk is full
	WaitDisk    = "disk"     // another error of this node's disk or store
)

// FileDone is reported when the recipient has verified the whole file: on
// the recipient once the file is in place (Path is the received file), on
// the sender once the recipient has said so (Path is the source file).
// Hash is the hex BLAKE3-256 of the file.
type FileDone struct {
	TransferID string  `json:"transfer_id"`
	Path       string  `json:"path"`
	Size       int64   `json:"size"`
	Hash       string  `json:"hash"`
	Direction  string  `json:"direction"`
	Peer       peer.ID `json:"peer"`
}

// FileFailed is reported on either side when a transfer fails or is
// cancelled by either side. Code is a short machine-readable reason:
// "cancelled", "verify_failed", "file_changed", "too_large", "no_space",
// "protocol", "not_found", "expired" or "error".
type FileFailed struct {
	TransferID string  `json:"transfer_id"`
	Error      string  `json:"error"`
	Code       string  `json:"code"`
	Direction  string  `json:"direction"`
	Peer       peer.ID `json:"peer"`
}

// FileRejected is reported on the sender when the recipient declines an
// offer, and on the recipient when it declines one (/reject).
type FileRejected struct {
	TransferID string  `json:"transfer_id"`
	Direction  string  `json:"direction"`
	Peer       peer.ID `json:"peer"`
}

func (FileOffer) Type() string    { return "file_offer" }
func (FileHashing) Type() string  { return "file_hashing" }
func (FileProgress) Type() string { return "file_progress" }
func (FileDone) Type() string     { return "file_done" }
func (FileFailed) Type() string   { return "file_failed" }
func (FileRejected) Type() string { return "file_rejected" }
