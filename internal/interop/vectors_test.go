package interop

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestVectorsInNode runs the JavaScript implementation of the name rule
// and room derivations against docs/vectors.
func TestVectorsInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs): the JavaScript implementation of the vectors was not checked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "vectors.mjs", "../../docs/vectors").CombinedOutput() // #nosec G204 -- fixed arguments
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node vectors.mjs: %v", err)
	}
}
