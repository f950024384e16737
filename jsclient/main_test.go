package jsclient_test

import (
	"os"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestMain fails the run when goroutines started by the tests outlive them.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunCheckingLeaks(m))
}
