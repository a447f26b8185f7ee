// Package overlay owns a Parley node's libp2p host and its connectivity:
// which transports and security it speaks, what it listens on, the resource
// and connection limits, the connection gater, the peers it keeps connected
// and the liveness check that drops peers that stop answering.
//
// The host speaks TCP and QUIC v1 over IPv4 and IPv6, secures every
// connection with Noise (preferred) or TLS 1.3, and multiplexes TCP
// connections with yamux. Every connection is authenticated by peer ID: a
// dial to /p2p/ID fails unless the remote proves it holds ID's key.
//
// By default it listens on all interfaces on random ports, because peers on
// the LAN must be able to reach it. What protects it: the handshake admits
// only authenticated peers, the gater refuses denied peer IDs and CIDRs
// before the handshake, the resource manager caps connections, streams and
// memory per peer and in total (see docs/OVERLAY.md), the connection manager
// trims connections above its high water mark, and every Parley protocol
// validates and bounds what it reads. Nothing else listens: there is no
// debug, admin or diagnostic endpoint.
package overlay
