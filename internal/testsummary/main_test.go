package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// events renders go test -json lines: package, test, action, output.
func events(t *testing.T, rows ...[4]string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(map[string]string{"Package": r[0], "Test": r[1], "Action": r[2], "Output": r[3]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSummary(t *testing.T) {
	const a, b = "example.com/m", "example.com/m/b"
	in := events(t,
		[4]string{a, "", "start", ""},
		[4]string{a, "TestPass", "run", ""},
		[4]string{a, "TestPass", "output", "=== RUN   TestPass\n"},
		[4]string{a, "TestPass", "output", "    a_test.go:5: noise\n"},
		[4]string{a, "TestPass", "output", "--- PASS: TestPass (0.00s)\n"},
		[4]string{a, "TestPass", "pass", ""},
		[4]string{a, "TestSkip", "output", "=== RUN   TestSkip\n"},
		[4]string{a, "TestSkip", "output", "    a_test.go:6: first\n"},
		[4]string{a, "TestSkip", "output", "    a_test.go:6: service missing: postgres\n"},
		[4]string{a, "TestSkip", "output", "--- SKIP: TestSkip (0.00s)\n"},
		[4]string{a, "TestSkip", "skip", ""},
		[4]string{a, "TestSub", "output", "=== RUN   TestSub\n"},
		[4]string{a, "TestSub/ok", "output", "=== RUN   TestSub/ok\n"},
		[4]string{a, "TestSub/ok", "output", "    a_test.go:8: quiet\n"},
		[4]string{a, "TestSub/ok", "output", "--- PASS: TestSub/ok (0.00s)\n"},
		[4]string{a, "TestSub/ok", "pass", ""},
		[4]string{a, "TestSub/bad", "output", "=== RUN   TestSub/bad\n"},
		[4]string{a, "TestSub/bad", "output", "    a_test.go:9: boom\n"},
		[4]string{a, "TestSub/bad", "output", "--- FAIL: TestSub/bad (0.00s)\n"},
		[4]string{a, "TestSub/bad", "fail", ""},
		[4]string{a, "TestSub/skipped", "output", "    a_test.go:10: service missing: postgres\n"},
		[4]string{a, "TestSub/skipped", "skip", ""},
		[4]string{a, "TestSub", "output", "--- FAIL: TestSub (0.00s)\n"},
		[4]string{a, "TestSub", "fail", ""},
		[4]string{a, "", "output", "FAIL\n"},
		[4]string{a, "", "output", "FAIL\texample.com/m\t0.1s\n"},
		[4]string{a, "", "fail", ""},
		// A package whose test binary dies inside a test: the test has no
		// end event, its output still shows.
		[4]string{b, "TestHang", "output", "=== RUN   TestHang\n"},
		[4]string{b, "TestHang", "output", "    b_test.go:3: waiting\n"},
		[4]string{b, "", "output", "panic: test timed out after 1s\n"},
		[4]string{b, "", "output", "FAIL\texample.com/m/b\t1.0s\n"},
		[4]string{b, "", "fail", ""},
		[4]string{"example.com/m/c", "", "output", "PASS\n"},
		[4]string{"example.com/m/c", "", "output", "ok  \texample.com/m/c\t0.1s\n"},
		[4]string{"example.com/m/c", "", "pass", ""},
	) + "not JSON\n"
	var out strings.Builder
	s := newSummary(&out, "example.com/m")
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	s.report()
	want := `    a_test.go:9: boom
--- FAIL: TestSub/bad (0.00s)
--- FAIL: TestSub (0.00s)
FAIL
FAIL	example.com/m	0.1s
panic: test timed out after 1s
    b_test.go:3: waiting
FAIL	example.com/m/b	1.0s
ok  	example.com/m/c	0.1s
not JSON

skipped: 2 tests
  service missing: postgres
    .: TestSkip TestSub/skipped
tests and subtests: 2 passed, 3 failed, 2 skipped
`
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCompact(t *testing.T) {
	got := strings.Join(compact([]string{"TestA", "TestB/x", "TestC/p/1", "TestC/p/2", "TestC/p/3", "TestB/y"}), " ")
	if want := "TestA TestB/x TestC/p/ (3 subtests) TestB/y"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
