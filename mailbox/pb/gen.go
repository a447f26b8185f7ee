// Package pb holds the protobuf messages of the mailbox protocols, of the
// signed mailbox record and letter, and of the mailbox package's local
// records.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative mailbox.proto
