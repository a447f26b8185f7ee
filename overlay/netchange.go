package overlay

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	ma "github.com/multiformats/go-multiaddr"
)

// netChangeDelay debounces bursts of address updates.
const netChangeDelay = 2 * time.Second

// netWatcher notices network changes: the node's interface addresses
// changed (another Wi-Fi, a cable plugged in, a VPN up). It then tells the
// services that depend on the network to start over: mDNS announces the
// new addresses, remembered peers and rendezvous namespaces are tried
// again at once instead of at the end of their backoff.
type netWatcher struct {
	o        *Host
	sub      event.Subscription
	last     []ma.Multiaddr
	onChange []func() // set before start
}

func newNetWatcher(o *Host) *netWatcher { return &netWatcher{o: o} }

func (w *netWatcher) start() error {
	sub, err := w.o.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	w.sub = sub
	w.last, _ = w.o.Network().InterfaceListenAddresses()
	w.o.goroutine(w.loop)
	return nil
}

func (w *netWatcher) stop() {
	if w.sub != nil {
		_ = w.sub.Close()
	}
}

func (w *netWatcher) loop() {
	var timer <-chan time.Time
	for {
		select {
		case <-w.o.ctx.Done():
			return
		case _, ok := <-w.sub.Out():
			if !ok {
				return
			}
			if timer == nil {
				timer = time.After(netChangeDelay)
			}
		case <-timer:
			timer = nil
			w.check()
		}
	}
}

func (w *netWatcher) check() {
	addrs, err := w.o.Network().InterfaceListenAddresses()
	if err != nil {
		w.o.log.Debug("interface addresses", "err", err)
		return
	}
	if slices.EqualFunc(addrs, w.last, ma.Multiaddr.Equal) {
		return
	}
	w.last = addrs
	w.o.log.Info("network changed; rediscovering peers", "addrs", addrs)
	for _, f := range w.onChange {
		f()
	}
}
