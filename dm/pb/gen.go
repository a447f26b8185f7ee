// Package pb holds the protobuf messages of the /parley/dm/1.0.0 protocol
// and of the dm package's local records.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative dm.proto
