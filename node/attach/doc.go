// Package attach is everything about a file attachment that needs neither
// the network nor the store: the attachment pointer carried inside an
// end-to-end message (Pointer), the size buckets of stored blobs
// (BlobSize), sealing a file into a padded STREAM blob in one streaming
// pass (Seal), sniffing a file's type, dimensions, thumbnail and duration
// (Inspect), and a download verifier that checks each STREAM chunk as it
// lands, knows where to resume after a restart, checks the blob's SHA-256
// at the end and decrypts to a path without ever leaving a half-written
// file there (Download).
//
// The node moves the bytes (/hush/file/1, the relay blob store) and keeps
// the records; this package decides what the bytes must be. The
// specification is docs/protocol/files.md (§19); the encryption is
// crypto/stream (docs/protocol/stream.md, §9).
package attach
