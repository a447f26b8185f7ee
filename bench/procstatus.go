package bench

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
)

// ParseVmRSS returns the VmRSS of a /proc/PID/status file in bytes; 0
// when it is missing or malformed.
func ParseVmRSS(status []byte) uint64 { return parseStatusKB(status, "VmRSS:") }

// parseStatusKB returns the field (such as "VmHWM:") of a /proc/PID/status
// file in bytes; 0 when it is missing or malformed.
func parseStatusKB(status []byte, field string) uint64 {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(field))
		if !ok {
			continue
		}
		fields := strings.Fields(string(rest))
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > math.MaxUint64>>10 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// procStatusBytes returns the field of /proc/PID/status in bytes; 0 when
// unknown.
func procStatusBytes(pid int, field string) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return parseStatusKB(b, field)
}
