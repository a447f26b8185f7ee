package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/present"
	"github.com/parley-chat/parley/transfer"
)

// Bounds on the transfers the UI tracks (the node keeps its own list:
// /transfers).
const (
	maxTransfers = 256
	maxOffers    = 32
	// endedShown is how long a finished transfer stays in the strip.
	endedShown = 5 * time.Second
)

type xferState int

const (
	xferOffered  xferState = iota // waiting for /accept or /reject
	xferHashing                   // this node hashes the file before offering it
	xferAccepted                  // accepted, no bytes yet
	xferActive                    // bytes moving
	xferWaiting                   // interrupted: waiting for the other side
	xferDone
	xferFailed
	xferRejected
)

// xfer is one file transfer as the UI shows it. Text fields are cleaned.
type xfer struct {
	id     string
	send   bool    // this node sends
	peer   peer.ID // the other side
	name   string
	room   string // a file shared in a room (fetch rather than accept)
	size   int64
	bytes  int64
	rate   int64 // bytes per second
	state  xferState
	ended  time.Time
	offerd bool // an offer this node has not answered yet
	// waitCode: why a waiting transfer waits, when it is this node's disk
	// (events.FileProgress.Code).
	waitCode string
	// holders: a room share being fetched, how many members it comes from
	// at the moment (events.FileProgress.Holders).
	holders int
}

func (x *xfer) moving() bool {
	return x.state == xferHashing || x.state == xferAccepted || x.state == xferActive || x.state == xferWaiting
}

// transfers tracks transfers and the offers waiting for an answer.
type transfers struct {
	byID   map[string]*xfer
	order  []string // ids, oldest first
	offers []string // ids of unanswered offers shown as a popup, oldest first
}

func newTransfers() transfers { return transfers{byID: make(map[string]*xfer)} }

// get returns the transfer id, creating it.
func (t *transfers) get(id string) *xfer {
	if x, ok := t.byID[id]; ok {
		return x
	}
	x := &xfer{id: id}
	t.byID[id] = x
	t.order = append(t.order, id)
	if len(t.order) > maxTransfers {
		t.evict()
	}
	return x
}

// evict forgets the oldest ended transfer, else the oldest one.
func (t *transfers) evict() {
	i := slices.IndexFunc(t.order, func(id string) bool {
		s := t.byID[id].state
		return s == xferDone || s == xferFailed || s == xferRejected
	})
	if i < 0 {
		i = 0
	}
	id := t.order[i]
	t.order = slices.Delete(t.order, i, i+1)
	delete(t.byID, id)
	t.drop(id)
}

// offer records an offer and queues its popup.
func (t *transfers) offer(x *xfer) {
	x.state, x.offerd = xferOffered, true
	t.offers = append(t.offers, x.id)
	if len(t.offers) > maxOffers {
		t.offers = slices.Delete(t.offers, 0, len(t.offers)-maxOffers)
	}
}

// drop removes an offer's popup.
func (t *transfers) drop(id string) {
	t.offers = slices.DeleteFunc(t.offers, func(o string) bool { return o == id })
}

// popup is the offer to show, nil when none waits.
func (t *transfers) popup() *xfer {
	for len(t.offers) > 0 {
		if x, ok := t.byID[t.offers[0]]; ok && x.offerd {
			return x
		}
		t.offers = t.offers[1:]
	}
	return nil
}

// dismiss hides the shown offer; it can still be answered with /accept.
func (t *transfers) dismiss() {
	if len(t.offers) > 0 {
		t.offers = t.offers[1:]
	}
}

// active counts the transfers shown in the strip.
func (t *transfers) active() int {
	n := 0
	for _, id := range t.order {
		x := t.byID[id]
		if x.moving() || !x.ended.IsZero() {
			n++
		}
	}
	return n
}

// prune stops showing transfers that ended a while ago.
func (t *transfers) prune(now time.Time) {
	for _, x := range t.byID {
		if !x.ended.IsZero() && now.Sub(x.ended) > endedShown {
			x.ended = time.Time{}
		}
	}
}

func (t *transfers) end(x *xfer, s xferState, now time.Time) {
	x.state, x.offerd = s, false
	if s == xferDone || x.bytes > 0 {
		x.ended = now
	}
	t.drop(x.id)
}

// answerOffer accepts or rejects the offer shown, through the same
// commands a user would type.
func (m *Model) answerOffer(accept bool) {
	x := m.transfers.popup()
	if x == nil {
		return
	}
	a := offerAction{offerReject, x.id}
	if accept {
		a.op = offerAccept
		if x.room != "" {
			a.op = offerFetch
		}
	}
	if !m.run(a) {
		return
	}
	x.offerd = false
	if accept {
		x.state = xferAccepted
	}
	m.transfers.drop(x.id)
}

// TransferLister is implemented by backends that run file transfers. The
// UI uses it to name transfers it first hears of from a progress, done,
// failed or rejected event (the sender's side, auto-accepted offers),
// which carry no file name.
type TransferLister interface {
	Transfers() []transfer.Info
}

// transferEvent shows a file transfer event; it reports false for other
// events.
func (m *Model) transferEvent(e events.Event) bool {
	now := m.now()
	switch e := e.(type) {
	case events.FileOffer:
		x := m.transfers.get(e.TransferID)
		x.peer, x.name, x.size, x.room = e.From, clean(e.Name), e.Size, e.Room
		m.transfers.offer(x)
		text := fmt.Sprintf("%s offers %s (%s): Alt+A accept, Alt+R reject, or /accept %s", m.peerLabel(x.peer), x.name, present.Bytes(x.size), present.ShortID(x.id))
		if x.room != "" {
			text = fmt.Sprintf("%s shares %s (%s): Alt+A or /fetch %s to get it", m.peerLabel(x.peer), x.name, present.Bytes(x.size), present.ShortID(x.id))
		}
		m.append(m.xferConv(x), &entry{kind: entrySystem, at: now, text: text}, true)
	case events.FileHashing:
		x := m.xfer(e.TransferID, e.Direction, e.Peer)
		if x.name == "" || strings.HasPrefix(x.name, "transfer ") {
			x.name = clean(e.Name)
		}
		x.bytes, x.size, x.rate = e.Bytes, e.Size, 0
		x.state, x.ended = xferHashing, time.Time{}
	case events.FileProgress:
		x := m.xfer(e.TransferID, e.Direction, e.Peer)
		x.bytes, x.size, x.rate = e.Bytes, e.Size, e.Rate
		x.state, x.offerd, x.ended = xferActive, false, time.Time{}
		x.waitCode, x.holders = "", e.Holders
		if e.Waiting {
			x.state, x.rate, x.waitCode = xferWaiting, 0, e.Code
		}
		m.transfers.drop(x.id)
	case events.FileDone:
		x := m.xfer(e.TransferID, e.Direction, e.Peer)
		x.bytes, x.size = e.Size, e.Size
		m.transfers.end(x, xferDone, now)
		text := fmt.Sprintf("received %s (%s), verified; saved as %s", x.name, present.Bytes(x.size), clean(e.Path))
		if x.send {
			text = fmt.Sprintf("%s (%s) reached %s, verified", x.name, present.Bytes(x.size), m.peerLabel(x.peer))
		}
		m.system(m.xferConv(x), entrySystem, text)
	case events.FileFailed:
		x := m.xfer(e.TransferID, e.Direction, e.Peer)
		m.transfers.end(x, xferFailed, now)
		m.append(m.xferConv(x), &entry{kind: entryError, at: now,
			text: fmt.Sprintf("transfer of %s failed: %s", x.name, clean(e.Error))}, true)
	case events.FileRejected:
		x := m.xfer(e.TransferID, e.Direction, e.Peer)
		m.transfers.end(x, xferRejected, now)
		text := fmt.Sprintf("%s declined %s", m.peerLabel(x.peer), x.name)
		if !x.send {
			text = "you declined " + x.name
		}
		m.system(m.xferConv(x), entrySystem, text)
	default:
		return false
	}
	return true
}

// xfer returns the transfer of a progress or end event, filling in what
// the event says and, for one the UI has not seen, its name.
func (m *Model) xfer(id, dir string, peerID peer.ID) *xfer {
	x := m.transfers.get(id)
	x.send = dir == "send"
	if peerID != "" {
		x.peer = peerID
	}
	if x.name != "" {
		return x
	}
	if tl, ok := m.be.(TransferLister); ok {
		for _, t := range tl.Transfers() {
			if t.ID == id {
				x.name, x.room = clean(t.Name), t.Room
				if x.size == 0 {
					x.size = t.Size
				}
				break
			}
		}
	}
	if x.name == "" {
		x.name = "transfer " + present.ShortID(id)
	}
	return x
}

// xferConv is where a transfer's lines go: the room of a share, else
// the private conversation with the other side.
func (m *Model) xferConv(x *xfer) *conv {
	if x.room != "" {
		if c, ok := m.convs[roomKey(x.room)]; ok {
			return c
		}
	}
	if x.peer != "" {
		return m.dmConv(x.peer)
	}
	return m.convs[statusKey]
}

// offerView draws the popup of a waiting offer, w cells wide.
func (m *Model) offerView(x *xfer, w int) []string {
	inner := max(10, w-4)
	who := m.peerLabel(x.peer)
	head := who + " offers a file"
	if x.room != "" {
		head = who + " shares a file in #" + clean(x.room)
	}
	lines := []string{
		m.st.Header.Render(cut(head, inner)),
		cut(x.name, max(1, inner-12)) + " · " + present.Bytes(x.size),
		"Alt+A accept · Alt+R reject · Esc later",
	}
	title := "─ file offer "
	out := []string{"╭" + title + strings.Repeat("─", max(0, inner+2-ansi.StringWidth(title))) + "╮"}
	for _, l := range lines {
		out = append(out, "│ "+fit(l, inner)+" │")
	}
	out = append(out, "╰"+strings.Repeat("─", inner+2)+"╯")
	for i := range out {
		out[i] = fit(m.st.Unread.Render(out[i]), w)
	}
	return out
}

// stripView draws up to rows transfers in progress, newest last.
func (m *Model) stripView(w, rows int) []string {
	if rows <= 0 {
		return nil
	}
	var shown []*xfer
	for _, id := range m.transfers.order {
		if x := m.transfers.byID[id]; x.moving() || !x.ended.IsZero() {
			shown = append(shown, x)
		}
	}
	if len(shown) > rows {
		shown = shown[len(shown)-rows:]
	}
	out := make([]string, 0, rows)
	for _, x := range shown {
		out = append(out, m.xferRow(x, w))
	}
	return out
}

// xferRow is one transfer: direction, name, bar, percentage, rate, ETA.
func (m *Model) xferRow(x *xfer, w int) string {
	arrow := "↓"
	if x.send {
		arrow = "↑"
	}
	pct := 0
	if x.size > 0 {
		pct = int(min(100, x.bytes*100/x.size))
	} else if x.state == xferDone {
		pct = 100
	}
	var tail string
	switch {
	case x.state == xferDone:
		tail = " done"
	case x.state == xferFailed:
		tail = " failed"
	case x.state == xferRejected:
		tail = " rejected"
	case x.state == xferAccepted:
		tail = " waiting"
	case x.state == xferWaiting && x.waitCode == events.WaitNoSpace:
		tail = " disk full: /resume"
	case x.state == xferWaiting && x.waitCode != "":
		tail = " disk error: /resume"
	case x.state == xferWaiting:
		tail = " waiting for peer"
	case x.state == xferHashing:
		tail = " hashing"
	default:
		tail = fmt.Sprintf(" %s/s ETA %s", present.Bytes(x.rate), present.ETA(x.size-x.bytes, x.rate))
	}
	// A fixed-width tail keeps the bars of several rows aligned.
	tail = fit(fmt.Sprintf(" %3d%%%s", pct, tail), 27)
	barW := min(30, max(5, w/4))
	filled := barW * pct / 100
	bar := "[" + m.st.Bar.Render(strings.Repeat("#", filled)) + strings.Repeat("-", barW-filled) + "]"
	nameW := min(48, max(4, w-3-barW-2-ansi.StringWidth(tail)-1))
	name := x.name + " · " + m.peerLabel(x.peer)
	if x.holders > 1 && x.state == xferActive { // a room share, pulled from several members
		name = fmt.Sprintf("%s · %d holders", x.name, x.holders)
	}
	return fit(" "+arrow+" "+fit(cut(name, nameW), nameW)+" "+bar+tail, w)
}
