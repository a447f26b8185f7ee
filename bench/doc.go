// Package bench is Parley's benchmark suite: the scenarios that both
// `parley bench` and `go test -bench` run, each measured next to a
// baseline in the same run (machines are noisy, so a number alone says
// little; a ratio to a baseline measured a moment earlier says more).
//
// Every scenario runs on loopback only (127.0.0.1; no mDNS, no DHT peers,
// no relays, no port mapping) and in one process, so both ends of every
// connection share the machine's CPUs:
//
//   - transfer: file transfer MB/s over TCP and over QUIC, next to a plain
//     libp2p stream io.Copy of the same file on the same hosts, the
//     stream's memory-to-memory ceiling and a raw TCP socket.
//   - rooms: N members of a room (N = 10, 50, 100) on a random topology,
//     each message published by a random member at a steady rate; delivery
//     latency, delivery ratio, GossipSub bytes sent per delivered byte and
//     CPU per message, next to plain GossipSub on the same hosts and
//     topology.
//   - churn: the same while 20% of the members restart.
//   - dm: direct-message round trip and messages per second, next to a raw
//     stream echo.
//   - cost: memory, goroutines and start-up time of one idle node and per
//     connected peer, next to a bare libp2p host.
//
// Every loop is bounded by a count and by time; Run stops early when its
// context ends. Results are rows of a Report, printed as Markdown or CSV.
package bench
