// Package sync is hush's multi-device engine: the network-free part of
// linking a new device to an account, transferring history to it, and
// keeping the account's devices in step afterwards.
//
// It holds:
//
//   - the link code an existing device shows and a new device reads
//     (LinkCode, Offer, ParseCode);
//   - the link channel, a Noise XXpsk0 handshake keyed by the code, as a
//     state machine driven by byte messages (Channel: NewInitiator,
//     NewResponder, Step, Seal, Open), the records it carries (grant,
//     enroll, welcome, close) and resume tickets;
//   - sync messages, the changes one device tells the others about, and
//     their canonical encoding (Message, Marshal, Parse);
//   - the merge rules, as a state that converges whatever the order and
//     duplicates of what it is given (Replica, MessageState,
//     ContactState), and the repair of a forked device list
//     (ResolveFork);
//   - the history transfer: a Producer over an abstract Source, a Consumer
//     that applies chunks idempotently with a resumable cursor.
//
// It performs no I/O: every call takes bytes and returns the bytes the
// caller must send, and the caller persists what a call changed in the
// same store batch as its effects. It opens no stream, starts no goroutine
// and reads the time only through the clock it is given (time.Now if
// none) or the time passed in. Package node wires it to libp2p
// (/hush/sync/1), the outbox, the store, the CLI and the API. None of its
// types is safe for concurrent use except Offer, whose one-use flag is
// shared by the handshakes a device answers.
//
// The project's package is named sync like the standard library's; import
// it as msync where both are needed. The specification is
// docs/protocol/sync.md.
package sync
