package transfer

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// Service and host is closed by then.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
