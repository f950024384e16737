package jsclient_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// sizeBudget is what telegraphy.js may weigh minified (esbuild --minify)
// and gzipped: 5 KB.
const sizeBudget = 5000

// TestNodeSize checks telegraphy.js against its size budget, minified
// with the esbuild of the repository's node_modules (npm ci).
func TestNodeSize(t *testing.T) {
	esbuild, err := filepath.Abs("../node_modules/.bin/esbuild")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(esbuild); err != nil {
		testenv.Missing(t, "node_modules/.bin/esbuild (run npm ci)")
	}
	min, err := exec.Command(esbuild, "--minify", "--log-level=warning", "telegraphy.js").Output()
	if err != nil {
		t.Fatalf("esbuild: %v", err)
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = w.Write(min)
	_ = w.Close()
	t.Logf("telegraphy.js: %d bytes minified, %d gzipped (budget %d)", len(min), gz.Len(), sizeBudget)
	if len(min) < 1000 {
		t.Fatalf("esbuild gave %d bytes: %s", len(min), min)
	}
	if gz.Len() >= sizeBudget {
		t.Errorf("telegraphy.js is %d bytes minified and gzipped, over its budget of %d", gz.Len(), sizeBudget)
	}
}
