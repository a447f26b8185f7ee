// Package mailbox implements offline delivery of direct messages: sealed
// deposits left with holders while the recipient is offline, picked up
// when it comes back, and acknowledged by sealed receipts deposited back
// for the sender (docs/PROTOCOL.md, "Offline delivery"; what a holder
// learns: docs/SECURITY.md).
//
// # Keys and records
//
// Every node derives an HPKE key (KEM MLKEM768-X25519) from its libp2p
// identity key (DeriveKEMKey) and publishes a Record, a libp2p signed
// envelope naming that key and the holders it reads from (SignRecord,
// OpenRecord). A mailbox id is a hash of the KEM public key: it depends on
// the recipient only.
//
// # Seals
//
// Seal signs a Letter (a note, i.e. a DM, or a receipt, with the sender's
// record) with the sender's identity key as a signed envelope and
// encrypts that with single-shot HPKE to the recipient's key. Open
// decrypts, verifies the signature and the sender's record, and checks
// the addressee.
//
// # Holders and couriers
//
// A Holder serves /parley/mailbox/1.0.0: it stores deposits per mailbox
// within quotas and an expiry, hands them to the owner who presents its
// signed record, deletes what the owner handled, and answers record
// lookups.
//
//	sender courier             holder                 recipient courier
//	  | -- Lookup{peer} -------> |                          |
//	  | <-- Found{record} ------ |                          |
//	  | -- Deposit{box, seal} -> | (stored, quotas)         |
//	  | <-- STORED ------------- |                          |
//	  |                          | <-- Pickup{record} ----- | (connects)
//	  |                          | --- Item..., End ------> | open, verify, store once
//	  |                          | <-- Delete{ids} -------- |
//	  |                          | <-- Deposit{receipt} --- |
//	  | -- Pickup{record} -----> | (later)                  |
//	  | <-- Item(receipt) ------ | delivered via holder     |
//
// A Courier runs on every chat node. It keeps the node's record and
// serves it on /parley/mailbox-record/1.0.0, names eligible holders in it,
// deposits the pending DMs of the dm outbox for recipients that direct
// delivery cannot reach (Observe watches the dm_status events), picks up
// its own mailbox when a holder connects and every PollInterval, hands
// notes to the dm service (which deduplicates them against direct
// messages) and applies receipts. The dm outbox stays the source of
// truth: a message is delivered on a direct ack or a receipt, never on a
// deposit.
package mailbox
