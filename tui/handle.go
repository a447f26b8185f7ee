package tui

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

// LogLine is a log record shown in the status conversation (see
// LogSink). It only ever travels from the node's logger to the UI.
type LogLine struct {
	Text string `json:"text"`
}

// Type names the event.
func (LogLine) Type() string { return "log" }

// handle shows one event. It reports whether the event may have changed
// what the snapshots show (peers, rooms, members, reachability, trust).
func (m *Model) handle(e events.Event) bool {
	status := m.convs[statusKey]
	switch e := e.(type) {
	case events.Ready:
		m.system(status, entrySystem, fmt.Sprintf("ready: %s (%s), peer id %s", clean(e.Nick), e.Fingerprint, e.PeerID))
		m.addrs = e.Addrs
		for _, a := range e.Addrs {
			m.system(status, entrySystem, "listening on "+clean(a))
		}
		return true
	case events.PeerConnected:
		m.system(status, entrySystem, fmt.Sprintf("connected: %s at %s", m.peerLabel(e.PeerID), clean(e.Addr)))
		return true
	case events.PeerDisconnected:
		why := ""
		if e.Reason == "liveness" {
			why = " (stopped answering pings)"
		}
		m.system(status, entrySystem, fmt.Sprintf("disconnected: %s%s", m.peerLabel(e.PeerID), why))
		return true
	case events.PeerPath:
		via := ""
		if e.Via != "" {
			via = m.peerLabel(e.Via)
		}
		m.system(status, entrySystem, present.PeerPath(e, m.peerLabel(e.PeerID), via))
		return true
	case events.Reachability:
		m.system(status, entrySystem, present.Reachability(e.Reachability, len(e.Relays)))
		return true
	case events.Error:
		m.system(m.activeConv(), entryError, clean(e.Error))
		return false
	case events.Info:
		m.system(m.activeConv(), entrySystem, cleanBlock(e.Text))
		return true
	case events.Message:
		m.roomMessage(e)
		return false
	case node.ShareAnnounced:
		m.system(m.roomConv(e.Room), entrySystem, present.Shared(e.Share, e.Room))
		return false
	case events.Joined:
		c := m.roomConv(e.Room)
		m.system(c, entrySystem, "joined #"+clean(e.Room))
		return true
	case events.Left:
		m.leftRoom(e.Room)
		return true
	case events.Presence:
		m.system(m.roomConv(e.Room), entrySystem, present.Presence(e))
		return true
	case events.RoomSync:
		// The header shows the state (from the snapshot); the room's
		// lines say where a sync ended with something to tell.
		if e.State == events.SyncGaps || (e.State == events.SyncComplete && e.CaughtUp > 0) {
			m.system(m.roomConv(e.Room), entrySystem, clean(present.RoomSync(e)))
		}
		return true
	case events.Membership:
		m.membership(e)
		return true
	case events.DM:
		m.directMessage(e)
		return false
	case events.DMStatus:
		m.dmStatus(e)
		return false
	case events.TrustWarning:
		m.system(status, entryWarning, clean(e.Text))
		if m.active != statusKey {
			m.system(m.activeConv(), entryWarning, clean(e.Text))
		}
		return true
	case events.PeerDialFailed:
		m.system(status, entryError, clean(present.DialFailed(m.peerLabel(e.PeerID), e)))
		return false
	case LogLine:
		m.system(status, entryLog, clean(e.Text))
		return false
	default:
		if m.transferEvent(e) {
			return false
		}
		b, err := events.MarshalJSON(e)
		if err != nil {
			m.system(status, entryError, "cannot show a "+clean(e.Type())+" event")
			return false
		}
		m.system(status, entrySystem, clean(string(b)))
		return false
	}
}

// system adds a line of the UI's own to a conversation; text is cleaned
// already.
func (m *Model) system(c *conv, kind entryKind, text string) {
	m.append(c, &entry{kind: kind, at: m.now(), text: text}, kind == entryError || kind == entryWarning)
}

// append adds e to c, counting it as unread when c is not shown and
// keeping a scrolled-up view where it is.
func (m *Model) append(c *conv, e *entry, unread bool) {
	m.appendNew(c, e, unread, false)
}

// appendNew is append for a message that may already be in c because c
// was just created for it (fresh): the stored history loaded then holds
// it already, and it is still unread.
func (m *Model) appendNew(c *conv, e *entry, unread, fresh bool) {
	if !c.add(e) {
		if fresh && unread && c.key != m.active {
			c.unread++
		}
		return
	}
	if c.key != m.active {
		if unread && c.kind != convStatus {
			c.unread++
		}
		return
	}
	if c.scroll > 0 {
		c.scroll += len(m.entryLines(e, m.layout().msgW))
		c.below++
	}
}

func (m *Model) roomMessage(e events.Message) {
	_, existed := m.convs[roomKey(e.Room)]
	c := m.roomConv(e.Room)
	m.appendNew(c, m.messageEntry(e), e.From != m.self.PeerID, !existed)
}

func (m *Model) messageEntry(e events.Message) *entry {
	return &entry{kind: entryMessage, at: e.SentAt, id: e.ID, from: e.From, nick: present.Peer(e.Nick, e.From, e.NickShared),
		self: e.From == m.self.PeerID, text: cleanBlock(e.Text)}
}

func (m *Model) leftRoom(room string) {
	k := roomKey(room)
	delete(m.convs, k)
	m.reorder()
	m.system(m.convs[statusKey], entrySystem, "left #"+clean(room))
	if m.cmds.Current() == room {
		m.cmds.SetCurrent("")
	}
	if m.active == k {
		m.active = statusKey
		m.refresh()
	}
}

func (m *Model) directMessage(e events.DM) {
	_, existed := m.convs[dmKey(e.From)]
	c := m.dmConv(e.From)
	if d := m.dmInfo[e.From]; d != nil && e.Nick != "" {
		d.nick = clean(e.Nick)
	}
	c.lastActive = m.now()
	m.appendNew(c, m.dmEntry(dm.Entry{ID: e.ID, Nick: e.Nick, Text: e.Text, SentAt: e.SentAt}, e.From), true, !existed)
}

// dmEntry makes an entry of a stored or received private message
// exchanged with p.
func (m *Model) dmEntry(h dm.Entry, p peer.ID) *entry {
	e := &entry{kind: entryMessage, at: h.SentAt, id: h.ID, text: cleanBlock(h.Text)}
	if h.Outgoing {
		e.self, e.from, e.nick = true, m.self.PeerID, clean(m.self.Nick)
		e.state, e.errText = h.State, clean(h.Error)
		return e
	}
	e.from = p
	e.nick = present.Peer(h.Nick, p, false)
	return e
}

func (m *Model) dmStatus(e events.DMStatus) {
	_, existed := m.convs[dmKey(e.To)]
	c := m.dmConv(e.To)
	c.lastActive = m.now()
	switch {
	case e.Reason != "":
		// The state is unchanged: only why the message waits.
		c.waiting = clean(e.Detail)
		if c.waiting == "" {
			c.waiting = clean(e.Reason)
		}
		return
	case e.State == events.DMDelivered:
		c.waiting = ""
	}
	if ent, ok := c.ids[e.ID]; ok {
		ent.state, ent.errText, ent.rendered = e.State, clean(e.Error), nil
		return
	}
	if existed {
		if hist, err := m.be.DMHistory(e.To, 20); err == nil {
			for _, h := range hist {
				if h.ID == e.ID {
					ent := m.dmEntry(h, e.To)
					ent.state, ent.errText = e.State, clean(e.Error)
					m.append(c, ent, false)
					return
				}
			}
		}
	}
	// Not in the store (any more): show the state without the text.
	if _, ok := c.ids[e.ID]; !ok {
		m.append(c, &entry{kind: entryMessage, at: m.now(), id: e.ID, self: true, from: m.self.PeerID,
			nick: clean(m.self.Nick), text: "(message " + present.ShortID(e.ID) + ")", state: e.State, errText: clean(e.Error)}, false)
	}
}

// peerLabel names the peer a status or transfer line is about
// (present.Member), with what the peers list knows of its nick.
func (m *Model) peerLabel(p peer.ID) string {
	return present.Member(m.peerByID[p].Nick, p)
}
