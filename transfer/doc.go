// Package transfer moves files between two peers over direct libp2p
// streams (protocol /parley/file/2.0.0, and /parley/file/1.0.0 with
// older peers, specified in docs/PROTOCOL.md), verified chunk by chunk
// and resumable across dropped streams, lost connections and restarts of
// either side.
//
// # Flow
//
// A file is cut into chunks of a power-of-two size (1 MiB by default) and
// each chunk's hash is its BLAKE3 chaining value, so the chunk hashes
// combine into the file's plain BLAKE3 hash (what b3sum prints); the list
// of chunk hashes with the file hash is the manifest.
//
// Offer returns at once and sends {id, name, size, chunk size} on an
// offer stream without reading the file (hash-as-you-send, protocol v2):
// the sender hashes each chunk as it reads it to send it and sends its
// hash in the chunk's header; the recipient counts a chunk only when its
// bytes match that hash and keeps the hashes; once it has every chunk it
// asks for the sender's commitment, the complete manifest, which must
// combine into its file hash and agree with every hash the chunks came
// with (also across restarts of either side), before the file is placed.
// A peer that speaks only v1, and every share, gets the file hashed first
// instead (StateHashing, file_hashing events, in the background), then
// {id, name, size, hash} and the manifest before the chunks, as follows.
// The recipient stores the offer,
// reports file_offer and waits for Accept or Reject (or AutoAccept). Once accepted the recipient
// drives everything: it opens a pull stream, asks for the manifest (when
// the offer had a hash), checks that the chunk hashes combine into the
// offered hash, then asks for the chunks it is missing. Each chunk streams into "name.part" in the
// downloads dir and is hashed on the way, piece by piece while each piece
// is in the CPU's cache, like a plain copy loop with a hash; it counts only
// when its hash matches. A chunk that does not match stays missing and is
// asked for again (over the same bytes of the part file), at most
// Config.ChunkRetries times, then the transfer fails.
// When every chunk is in, the part file is synced and hard-linked to its
// final name, the first free one among "name", "name (1)"... chosen when
// the part file was created (a hard link never replaces a file; if the
// name was taken meanwhile the next free one is used), and a DONE notice
// tells the sender, whose Wait then returns.
//
// # Swarming
//
// A share fetched from a room (Fetch) is pulled from every member that
// holds it at once, chunk by chunk: the sharer, and members whose fetch
// is in place, which serve it too (Config.Held asks the node to announce
// that in the room; AddRemoteShare records each holder). A holder that
// leaves costs only its share of the speed; one that sends a chunk that
// does not match the manifest is dropped. See swarm.go.
//
// # Resume
//
// The recipient keeps the verified-chunk bitmap in the store. When a
// stream breaks it retries with backoff while the peer stays connected,
// and otherwise waits for the peer to reconnect (the host's
// EvtPeerConnectednessChanged) or for Resume. After a restart it checks
// the part file against the manifest, so chunks that were written but not
// yet recorded (a crash) are kept and chunks that were recorded but lost
// are fetched again: only missing chunks ever cross the network again.
//
// # Safety
//
// Everything is written through an os.Root on the downloads dir, under a
// name reduced by package safename; received files get mode 0600 and are
// never opened or executed. Offers over Config.MaxFileSize or over the
// free disk space are refused before a byte is written; a sender that
// sends more than a chunk's declared length is cut off; transfers with one
// peer are capped at Config.MaxPerPeer in each direction. Control frames
// are bounded (MaxFrameSize) and every field is checked before use.
//
// # Goroutines
//
// Service owns its goroutines: one per receiving transfer while it runs
// (it reads, writes and hashes the chunks itself), one per inbound stream
// (a stream serving chunks runs sendDepth short-lived workers, so that
// the next chunk is read from the file while one is written to the
// stream), one watching peer connections, and one per notice being
// delivered, and one per file offered or shared (it sends the offer at
// once; for a v1 peer or a share it first hashes the file, on up to four
// short-lived workers that hash chunks in parallel). Close cancels them all and
// waits; a file whose hashing Close interrupts stays stored in
// StateHashing, without a manifest, and fails at the next start, so an
// offer never goes out with a partial manifest.
package transfer
