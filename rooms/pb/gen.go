// Package pb holds the protobuf messages of the rooms protocol.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative rooms.proto sync.proto membership.proto
