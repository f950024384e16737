package telegraphy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering checks that the packages below the GORM plugin import
// nothing from GORM: a hub process, a broker or token handler pulls in
// only the wire types of events.
func TestLayering(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; cannot list package dependencies")
	}
	for _, pkg := range []string{"./events", "./hub", "./broker", "./broker/redisbroker", "./tokens"} {
		out, err := exec.Command(gobin, "list", "-deps", pkg).Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pkg)
		}
		for _, dep := range deps {
			if strings.HasPrefix(dep, "gorm.io/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
