package mailbox

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/mailbox/pb"
)

// sendLoop is the deposit worker: it fetches records to learn, deposits
// DMs for offline recipients and receipts for senders, each when due,
// one at a time.
func (c *Courier) sendLoop() {
	defer c.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	c.pruneSent(time.Now())
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wakeSend:
		case <-timer.C:
		case <-prune.C:
			c.pruneSent(time.Now())
		}
		next := c.runDue(time.Now())
		timer.Reset(time.Until(next))
	}
}

// runDue runs every due job and returns when the next one is due.
func (c *Courier) runDue(now time.Time) time.Time {
	next := now.Add(time.Hour)
	c.mu.Lock()
	learn := make([]peer.ID, 0, len(c.learn))
	for p := range c.learn {
		learn = append(learn, p)
	}
	clear(c.learn)
	var sends, receipts []peer.ID
	for p, r := range c.sends {
		if r.due.After(now) {
			next = minTime(next, r.due)
			continue
		}
		sends = append(sends, p)
	}
	for p, j := range c.receipts {
		if j.due.After(now) {
			next = minTime(next, j.due)
			continue
		}
		receipts = append(receipts, p)
	}
	c.mu.Unlock()
	for _, p := range learn {
		c.fetchRecord(p)
	}
	for _, p := range receipts {
		if c.ctx.Err() != nil {
			break
		}
		next = minTime(next, c.sendReceipts(p))
	}
	for _, p := range sends {
		if c.ctx.Err() != nil {
			break
		}
		next = minTime(next, c.depositFor(p))
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// fetchRecord asks a connected peer for its own record.
func (c *Courier) fetchRecord(p peer.ID) {
	if c.h.Network().Connectedness(p) != network.Connected {
		return
	}
	if ok, _ := c.h.Peerstore().SupportsProtocols(p, RecordProtocolID); len(ok) == 0 {
		return
	}
	rec, err := c.client.OwnRecord(c.ctx, p)
	if err != nil || rec == nil {
		c.log.Debug("mailbox: fetching a record failed", "peer", p, "err", err)
		return
	}
	c.remember(rec)
}

// later schedules a retry of a job after a failure and returns its time.
func (c *Courier) later(r *retry) time.Time {
	r.backoff = min(max(r.backoff*2, c.cfg.RetryMin), c.cfg.RetryMax)
	r.due = time.Now().Add(r.backoff + mrand.N(r.backoff/4+1)) // #nosec G404 -- backoff jitter
	return r.due
}

// depositFor seals and deposits p's pending, not yet deposited messages
// with p's holders. It returns when to try again (far away when done).
func (c *Courier) depositFor(p peer.ID) time.Time {
	err := c.deposit(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.sends[p]
	if r == nil {
		return time.Now().Add(time.Hour)
	}
	if r.dirty {
		r.dirty = false
		return time.Now()
	}
	if err == nil {
		delete(c.sends, p)
		return time.Now().Add(time.Hour)
	}
	c.log.Debug("mailbox: deposit incomplete, retrying later", "peer", p, "err", err)
	return c.later(r)
}

func (c *Courier) deposit(p peer.ID) error {
	pending, err := c.cfg.Outbox.PendingTo(p)
	if err != nil {
		return err
	}
	todo := c.undeposited(p, pending)
	if len(todo) == 0 {
		return nil
	}
	rec, err := c.recordOf(c.ctx, p)
	if err != nil {
		return err
	}
	if len(rec.Holders) == 0 {
		return fmt.Errorf("%w: %s names none", ErrNoHolder, p)
	}
	own := c.Record()
	nick := c.cfg.Nick()
	if identity.ValidateNick(nick) != nil {
		nick = ""
	}
	reqs := make([]DepositReq, len(todo))
	for i, m := range todo {
		note := &pb.Note{Id: m.ID, Text: m.Text, Nick: nick, SentAtMs: m.CreatedMs, Seq: m.Seq}
		sealed, err := Seal(c.cfg.Key, own.Envelope, rec, note)
		if err != nil {
			return err
		}
		reqs[i] = DepositReq{Mailbox: rec.MailboxID(), Sealed: sealed, Expires: time.UnixMilli(m.ExpiresMs)}
	}
	told := make([]bool, len(todo))
	var errs []error
	for _, hd := range rec.Holders {
		stored, err := c.depositAt(hd, reqs)
		if err != nil {
			errs = append(errs, err)
		}
		var ids [][]byte
		for i, ok := range stored {
			if ok {
				ids = append(ids, todo[i].ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if err := c.markSent(p, hd.ID, ids); err != nil {
			return fmt.Errorf("record deposits: %w", err)
		}
		for i, ok := range stored {
			if ok && !told[i] {
				told[i] = true
				c.cfg.Emitter.Emit(events.DMStatus{ID: fmt.Sprintf("%x", todo[i].ID), To: p, State: todo[i].State,
					Reason: events.DMWaitDeposited, Via: hd.ID.String(),
					Detail: "the recipient is offline; a sealed copy waits with holder " + hd.ID.String()})
			}
		}
	}
	for _, ok := range told {
		if !ok {
			return fmt.Errorf("%w: %w", ErrNoHolder, errors.Join(errs...))
		}
	}
	return nil
}

// depositAt deposits reqs with one holder and says which it stored.
func (c *Courier) depositAt(hd peer.AddrInfo, reqs []DepositReq) ([]bool, error) {
	c.reach(hd)
	sts, err := c.client.Deposit(c.ctx, hd.ID, reqs)
	stored := make([]bool, len(reqs))
	var refused error
	for i, st := range sts {
		stored[i] = st == pb.Status_STATUS_STORED
		if st != pb.Status_STATUS_STORED && st != pb.Status_STATUS_UNSPECIFIED {
			refused = statusError(st)
		}
	}
	if err == nil && refused != nil {
		err = fmt.Errorf("holder %s: %w", hd.ID, refused)
	}
	return stored, err
}

// queueReceipt adds note ids to acknowledge to sender.
func (c *Courier) queueReceipt(sender *Record, ids [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	j, ok := c.receipts[sender.Peer]
	if !ok {
		j = &receiptJob{rec: sender}
		c.receipts[sender.Peer] = j
	}
	if sender.Issued.After(j.rec.Issued) {
		j.rec = sender
	}
	j.ids = append(j.ids, ids...)
	j.due = time.Time{}
}

// sendReceipts deposits the queued receipts for sender p with its
// holders. Receipts are kept in memory only: one lost to a restart costs
// the sender a direct retransmission, acknowledged as a duplicate.
func (c *Courier) sendReceipts(p peer.ID) time.Time {
	c.mu.Lock()
	j := c.receipts[p]
	rec, ids := j.rec, j.ids
	c.mu.Unlock()
	err := c.receipt(rec, ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		j.ids = j.ids[len(ids):]
		if len(j.ids) == 0 {
			delete(c.receipts, p)
			return time.Now().Add(time.Hour)
		}
		return time.Now()
	}
	c.log.Debug("mailbox: receipt deposit failed, retrying later", "peer", p, "err", err)
	return c.later(&j.retry)
}

// receipt deposits a receipt for ids with the holders of the sender of
// rec (its newest record known: rec, cached, or asked of the holders
// when rec names none).
func (c *Courier) receipt(rec *Record, ids [][]byte) error {
	if cached, _ := c.cached(rec.Peer); cached != nil && cached.Issued.After(rec.Issued) {
		rec = cached
	}
	if len(rec.Holders) == 0 {
		if r, err := c.lookupFresh(rec.Peer); err == nil {
			rec = r
		}
	}
	return c.depositReceipts(rec, ids)
}

// lookupFresh asks the known holders for p's record, bypassing the cache.
func (c *Courier) lookupFresh(p peer.ID) (*Record, error) {
	for _, hp := range c.knownHolders() {
		rec, err := c.client.Lookup(c.ctx, hp, p)
		if err == nil && rec != nil {
			c.remember(rec)
			return rec, nil
		}
	}
	return nil, ErrNoRecord
}

func (c *Courier) depositReceipts(rec *Record, ids [][]byte) error {
	if len(rec.Holders) == 0 {
		return fmt.Errorf("%w: %s names none", ErrNoHolder, rec.Peer)
	}
	own := c.Record()
	var reqs []DepositReq
	for start := 0; start < len(ids); start += MaxReceiptIDs {
		chunk := ids[start:min(start+MaxReceiptIDs, len(ids))]
		sealed, err := Seal(c.cfg.Key, own.Envelope, rec, &pb.Receipt{Ids: chunk})
		if err != nil {
			return err
		}
		reqs = append(reqs, DepositReq{Mailbox: rec.MailboxID(), Sealed: sealed, Expires: time.Now().Add(DefaultMaxAge)})
	}
	done := make([]bool, len(reqs))
	var errs []error
	for _, hd := range rec.Holders {
		stored, err := c.depositAt(hd, reqs)
		if err != nil {
			errs = append(errs, err)
		}
		for i, ok := range stored {
			done[i] = done[i] || ok
		}
	}
	for _, ok := range done {
		if !ok {
			return fmt.Errorf("%w: %w", ErrNoHolder, errors.Join(errs...))
		}
	}
	return nil
}

// pickLoop is the pickup worker: from holders that just connected, and
// from every connected holder each PollInterval.
func (c *Courier) pickLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wakePick:
		case <-t.C:
			c.mu.Lock()
			for _, ai := range c.own.Holders {
				if c.h.Network().Connectedness(ai.ID) == network.Connected {
					c.picks[ai.ID] = struct{}{}
				}
			}
			c.mu.Unlock()
		}
		c.mu.Lock()
		picks := make([]peer.ID, 0, len(c.picks))
		for p := range c.picks {
			picks = append(picks, p)
		}
		clear(c.picks)
		c.mu.Unlock()
		for _, p := range picks {
			if c.ctx.Err() != nil {
				return
			}
			if err := c.pickup(c.ctx, p); err != nil && c.ctx.Err() == nil {
				c.log.Debug("mailbox: pickup failed", "holder", p, "err", err)
			}
		}
	}
}

// pickup empties this node's mailbox at holder hp: it opens every
// deposit, hands notes to the outbox (which stores each once and reports
// it), applies receipts, deletes what it handled and queues receipts.
func (c *Courier) pickup(ctx context.Context, hp peer.ID) error {
	items := 0
	var err error
	for range maxPickupRounds {
		var n int
		var more bool
		n, more, err = c.pickupRound(ctx, hp)
		items += n
		if err != nil || !more {
			break
		}
	}
	c.mu.Lock()
	first := !c.picked[hp] && err == nil
	c.picked[hp] = c.picked[hp] || err == nil
	c.mu.Unlock()
	if first || items > 0 {
		c.cfg.Emitter.Emit(events.MailboxPickup{Holder: hp, Items: items})
	}
	return err
}

func (c *Courier) pickupRound(ctx context.Context, hp peer.ID) (items int, more bool, err error) {
	own := c.Record()
	pk, err := c.client.Pickup(ctx, hp, own.Envelope, MaxPickupBatch)
	if err != nil {
		return 0, false, err
	}
	defer pk.Close()
	var del []uint64
	var notes []opened
	for _, it := range pk.Items {
		l, err := Open(it.Sealed, c.kem, c.h.ID())
		if err != nil {
			// Not for us, or altered: it can never be opened. The sender
			// keeps the message and retries until a receipt.
			c.log.Debug("mailbox: dropping a deposit that does not open", "holder", hp, "err", err)
			del = append(del, it.ID)
			continue
		}
		c.remember(l.SenderRecord)
		if l.Receipt != nil {
			if err := c.cfg.Outbox.ConfirmDelivered(l.From, l.Receipt, hp.String()); err != nil {
				c.log.Warn("mailbox: applying a receipt failed", "err", err)
				continue
			}
			c.forgetSent(l.From, l.Receipt)
			del = append(del, it.ID)
			continue
		}
		notes = append(notes, opened{id: it.ID, l: l})
	}
	sortNotes(notes)
	acks := map[peer.ID][][]byte{}
	recs := map[peer.ID]*Record{}
	for _, n := range notes {
		v, err := c.cfg.Outbox.AcceptRelayed(dm.Relayed{ID: n.l.Note.Id, From: n.l.From, Nick: n.l.Note.Nick,
			Text: n.l.Note.Text, SentAtMs: n.l.Note.SentAtMs, Via: hp.String()})
		if err != nil {
			c.log.Warn("mailbox: storing a picked-up message failed", "err", err)
			continue // kept at the holder for the next pickup
		}
		del = append(del, n.id)
		if v != dm.Refused {
			acks[n.l.From] = append(acks[n.l.From], n.l.Note.Id)
			recs[n.l.From] = n.l.SenderRecord
		}
	}
	if _, err := pk.Delete(del); err != nil {
		return len(del), false, fmt.Errorf("delete picked-up deposits: %w", err)
	}
	// Receipts go out at once; those that find no holder wait in the
	// deposit worker's queue.
	for p, ids := range acks {
		if err := c.receipt(recs[p], ids); err != nil {
			c.log.Debug("mailbox: receipt deposit failed, retrying later", "peer", p, "err", err)
			c.queueReceipt(recs[p], ids)
			poke(c.wakeSend)
		}
	}
	return len(del), pk.More, nil
}

// forgetSent drops the deposit records of acknowledged messages.
func (c *Courier) forgetSent(to peer.ID, ids [][]byte) {
	_ = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSent))
		for _, id := range ids {
			_ = b.Delete(sentKey(to, id))
		}
		return nil
	})
}
