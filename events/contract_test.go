package events

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// testPeerID is a peer ID in its text form; testPeer the same as a peer.ID.
const testPeerID = "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"

var testPeer = mustPeer(testPeerID)

func mustPeer(s string) peer.ID {
	p, err := peer.Decode(s)
	if err != nil {
		panic(err)
	}
	return p
}

// TestContract pins the JSON form of every event (docs/EVENTS.md): the
// services' typed fields (peer.ID, time.Time) become exactly the strings
// the contract has always had.
func TestContract(t *testing.T) {
	at := time.Date(2026, 12, 5, 16, 20, 32, 123456789, time.FixedZone("X", 3600))
	p := testPeerID
	cases := []struct {
		e    Event
		want string
	}{
		{Ready{PeerID: testPeer, Nick: "ann", Fingerprint: "ABCD-EFGH", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + p}},
			`{"type":"ready","peer_id":"` + p + `","nick":"ann","fingerprint":"ABCD-EFGH","addrs":["/ip4/127.0.0.1/tcp/1/p2p/` + p + `"]}`},
		{PeerDisconnected{PeerID: testPeer, Addr: "/ip4/127.0.0.1/tcp/1", Reason: "liveness"},
			`{"type":"peer_disconnected","peer_id":"` + p + `","addr":"/ip4/127.0.0.1/tcp/1","reason":"liveness"}`},
		{Message{Room: "lobby", ID: "00ff", From: testPeer, Nick: "ann", Text: "hi", SentAt: at, Private: true, Fingerprint: "ABCD", NickShared: true},
			`{"type":"message","room":"lobby","id":"00ff","from":"` + p + `","nick":"ann","text":"hi","sent_at":"2026-12-05T15:20:32.123Z","private":true,"fingerprint":"ABCD","nick_shared":true}`},
		{Message{Room: "lobby", ID: "00ff", From: testPeer, Nick: "ann", Text: "hi", SentAt: at, Fingerprint: "ABCD", CaughtUp: true},
			`{"type":"message","room":"lobby","id":"00ff","from":"` + p + `","nick":"ann","text":"hi","sent_at":"2026-12-05T15:20:32.123Z","private":false,"fingerprint":"ABCD","nick_shared":false,"caught_up":true}`},
		{RoomSync{Room: "lobby", State: SyncWaiting},
			`{"type":"room_sync","room":"lobby","state":"waiting","peers":0,"caught_up":0}`},
		{RoomSync{Room: "lobby", State: SyncComplete, Since: at, Peers: 2, CaughtUp: 200},
			`{"type":"room_sync","room":"lobby","state":"complete","since":"2026-12-05T15:20:32.123Z","peers":2,"caught_up":200}`},
		{RoomSync{Room: "lobby", State: SyncGaps, Since: at, Peers: 1, CaughtUp: 3, Gaps: []SyncGap{{From: at, To: at.Add(time.Minute), Missing: 2}}},
			`{"type":"room_sync","room":"lobby","state":"gaps","since":"2026-12-05T15:20:32.123Z","peers":1,"caught_up":3,"gaps":[{"from":"2026-12-05T15:20:32.123Z","to":"2026-12-05T15:21:32.123Z","missing":2}]}`},
		{Error{Error: "bad", Command: "/x"}, `{"type":"error","error":"bad","command":"/x"}`},
		{Error{Error: "clock off", Code: ErrClockSkew}, `{"type":"error","error":"clock off","command":"","code":"clock_skew"}`},
		{Presence{Room: "lobby", PeerID: testPeer, Nick: "ann", Online: true},
			`{"type":"presence","room":"lobby","peer_id":"` + p + `","nick":"ann","online":true}`},
		{Membership{Room: "team", Op: "remove", By: testPeer, Subject: testPeer, Epoch: 2, Seq: 5, Self: true},
			`{"type":"membership","room":"team","op":"remove","by":"` + p + `","subject":"` + p + `","epoch":2,"seq":5,"self":true}`},
		{Membership{Room: "team", Op: "rotate", By: testPeer, Epoch: 3, Seq: 6},
			`{"type":"membership","room":"team","op":"rotate","by":"` + p + `","epoch":3,"seq":6}`},
		{Membership{Room: "team", Op: "add", By: testPeer, Subject: testPeer, Epoch: 1, Seq: 4, Invite: "0011223344556677"},
			`{"type":"membership","room":"team","op":"add","by":"` + p + `","subject":"` + p + `","epoch":1,"seq":4,"invite":"0011223344556677"}`},
		{DM{ID: "01", From: testPeer, Nick: "ann", Text: "yo", SentAt: at.UTC().Truncate(time.Millisecond)},
			`{"type":"dm","id":"01","from":"` + p + `","nick":"ann","text":"yo","sent_at":"2026-12-05T15:20:32.123Z"}`},
		{DMStatus{ID: "01", To: testPeer, State: DMFailed, Error: "expired"},
			`{"type":"dm_status","id":"01","to":"` + p + `","state":"failed","error":"expired"}`},
		{DMStatus{ID: "01", To: testPeer, State: DMQueued, Reason: DMWaitDialFailed, Detail: "127.0.0.1:1 refused the connection"},
			`{"type":"dm_status","id":"01","to":"` + p + `","state":"queued","reason":"dial_failed","detail":"127.0.0.1:1 refused the connection"}`},
		{DMStatus{ID: "01", To: testPeer, State: DMDelivered, Via: DMViaDirect},
			`{"type":"dm_status","id":"01","to":"` + p + `","state":"delivered","via":"direct"}`},
		{DMStatus{ID: "01", To: testPeer, State: DMQueued, Reason: DMWaitDeposited, Detail: "d", Via: p},
			`{"type":"dm_status","id":"01","to":"` + p + `","state":"queued","reason":"deposited","detail":"d","via":"` + p + `"}`},
		{MailboxPickup{Holder: testPeer, Items: 3}, `{"type":"mailbox_pickup","holder":"` + p + `","items":3}`},
		{TrustWarning{PeerID: testPeer, Nick: "ann", PinnedPeerID: testPeer, Text: "w"},
			`{"type":"trust_warning","peer_id":"` + p + `","nick":"ann","pinned_peer_id":"` + p + `","text":"w"}`},
		{FileOffer{TransferID: "aa", From: testPeer, Name: "f", Size: 3, Room: "r"},
			`{"type":"file_offer","transfer_id":"aa","from":"` + p + `","name":"f","size":3,"room":"r"}`},
		{FileHashing{TransferID: "aa", Name: "f", Bytes: 1, Size: 3, Direction: "send", Peer: testPeer},
			`{"type":"file_hashing","transfer_id":"aa","name":"f","bytes":1,"size":3,"direction":"send","peer":"` + p + `"}`},
		{FileHashing{TransferID: "aa", Name: "f", Bytes: 3, Size: 3, Direction: "send"}, // a room share
			`{"type":"file_hashing","transfer_id":"aa","name":"f","bytes":3,"size":3,"direction":"send"}`},
		{FileProgress{TransferID: "aa", Bytes: 1, Size: 3, Rate: 2, Direction: "send", Peer: testPeer},
			`{"type":"file_progress","transfer_id":"aa","bytes":1,"size":3,"rate":2,"direction":"send","peer":"` + p + `"}`},
		{FileProgress{TransferID: "aa", Bytes: 1, Size: 3, Direction: "receive", Peer: testPeer, Waiting: true},
			`{"type":"file_progress","transfer_id":"aa","bytes":1,"size":3,"rate":0,"direction":"receive","peer":"` + p + `","waiting":true}`},
		{FileProgress{TransferID: "aa", Bytes: 1, Size: 3, Direction: "receive", Peer: testPeer, Waiting: true, Code: WaitNoSpace, Reason: "disk full"},
			`{"type":"file_progress","transfer_id":"aa","bytes":1,"size":3,"rate":0,"direction":"receive","peer":"` + p + `","waiting":true,"code":"no_space","reason":"disk full"}`},
		{FileProgress{TransferID: "aa", Bytes: 1, Size: 3, Rate: 2, Direction: "receive", Peer: testPeer, Holders: 3},
			`{"type":"file_progress","transfer_id":"aa","bytes":1,"size":3,"rate":2,"direction":"receive","peer":"` + p + `","holders":3}`},
		{FileDone{TransferID: "aa", Path: "/x", Size: 3, Hash: "h", Direction: "receive", Peer: testPeer},
			`{"type":"file_done","transfer_id":"aa","path":"/x","size":3,"hash":"h","direction":"receive","peer":"` + p + `"}`},
		{FileFailed{TransferID: "aa", Error: "e", Code: "error", Direction: "send", Peer: testPeer},
			`{"type":"file_failed","transfer_id":"aa","error":"e","code":"error","direction":"send","peer":"` + p + `"}`},
		{FileRejected{TransferID: "aa", Direction: "send", Peer: testPeer},
			`{"type":"file_rejected","transfer_id":"aa","direction":"send","peer":"` + p + `"}`},
		{Reachability{Reachability: "private", Relays: []peer.ID{testPeer}, RelayAddrs: []string{}},
			`{"type":"reachability","reachability":"private","relays":["` + p + `"],"relay_addrs":[]}`},
		{PeerPath{PeerID: testPeer, Path: "direct", Addr: "/ip4/127.0.0.1/tcp/1", Previous: "relayed"},
			`{"type":"peer_path","peer_id":"` + p + `","path":"direct","addr":"/ip4/127.0.0.1/tcp/1","previous":"relayed"}`},
		{PeerPath{PeerID: testPeer, Path: "relayed", Addr: "/ip4/127.0.0.1/tcp/1/p2p/" + p + "/p2p-circuit", Previous: "lan", Via: testPeer},
			`{"type":"peer_path","peer_id":"` + p + `","path":"relayed","addr":"/ip4/127.0.0.1/tcp/1/p2p/` + p + `/p2p-circuit","previous":"lan","via":"` + p + `"}`},
		{PeerPath{PeerID: testPeer, Path: "direct", Addr: "/ip4/1.2.3.4/udp/1/quic-v1", Previous: "relayed", HolePunched: true},
			`{"type":"peer_path","peer_id":"` + p + `","path":"direct","addr":"/ip4/1.2.3.4/udp/1/quic-v1","previous":"relayed","hole_punched":true}`},
		{PeerDialFailed{PeerID: testPeer, Addr: "127.0.0.1:1", Reason: "refused", Error: "127.0.0.1:1 refused the connection", RetryIn: 2500 * time.Millisecond},
			`{"type":"peer_dial_failed","peer_id":"` + p + `","addr":"127.0.0.1:1","reason":"refused","error":"127.0.0.1:1 refused the connection","retry_in_ms":2500}`},
	}
	for _, tc := range cases {
		b, err := MarshalJSON(tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.e.Type(), err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.e.Type(), b, tc.want)
		}
	}
}
