// Package pb holds the protobuf wire messages of the file transfer protocol
// /parley/file/2.0.0 and /parley/file/1.0.0 (see transfer.proto and docs/PROTOCOL.md).
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative transfer.proto
