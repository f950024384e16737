package jsclient_test

import (
	"os"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestMain fails the run when goroutines started by the tests outlive
// them. With TELEGRAPHY_TEST_CARD_WRITER set, the binary is instead an app
// process of TestNodeTwoProcesses.
func TestMain(m *testing.M) {
	if os.Getenv(envCardWriter) != "" {
		os.Exit(cardWriterMain())
	}
	os.Exit(testenv.RunCheckingLeaks(m))
}
