// Command testsummary runs go test with -json and prints what go test
// prints without -v: the output of the tests that failed, build errors and
// each package's closing "ok" or "FAIL" line. It then lists the tests that
// were skipped, grouped by the reason they gave, so a missing service or a
// short-mode skip is visible without -v.
//
//	go run ./internal/testsummary go test -json [flags] [packages]
//
// Its arguments are the command to run, which must print go test's JSON
// events on stdout; its stderr is passed through. testsummary exits with
// the command's exit status, or 1 when a test failed and the command still
// exited 0.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsummary go test -json [flags] [packages]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	s := newSummary(os.Stdout, modulePath())
	if err := s.read(stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		code = exit.ExitCode()
	}
	s.report()
	if code == 0 && s.failed > 0 {
		code = 1
	}
	os.Exit(code)
}

// modulePath returns the module path in ./go.mod, or "".
func modulePath() string {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		return ""
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail
	Test       string
	Output     string
}

type line struct {
	test, text string
}

// running is a top-level test and its subtests, whose output is held until
// the test ends: printed if it failed, dropped otherwise.
type running struct {
	lines  []line
	failed map[string]bool
}

type skip struct {
	pkg, test string
}

type summary struct {
	out     io.Writer
	module  string
	tests   map[string]map[string]*running // package → top-level test
	skipped map[string][]skip              // reason → tests
	passed  int
	failed  int
}

func newSummary(out io.Writer, module string) *summary {
	return &summary{out: out, module: module,
		tests: make(map[string]map[string]*running), skipped: make(map[string][]skip)}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			// Not an event (a line go test printed in another form).
			fmt.Fprintln(s.out, sc.Text())
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	if e.Action == "build-output" {
		io.WriteString(s.out, e.Output)
		return
	}
	if e.Test == "" {
		s.packageEvent(e)
		return
	}
	top, _, _ := strings.Cut(e.Test, "/")
	pkg := s.tests[e.Package]
	if pkg == nil {
		pkg = make(map[string]*running)
		s.tests[e.Package] = pkg
	}
	t := pkg[top]
	if t == nil {
		t = &running{failed: make(map[string]bool)}
		pkg[top] = t
	}
	switch e.Action {
	case "output":
		t.lines = append(t.lines, line{e.Test, e.Output})
	case "pass":
		s.passed++
		if e.Test == top {
			delete(pkg, top)
		}
	case "skip":
		reason := skipReason(t.lines, e.Test)
		s.skipped[reason] = append(s.skipped[reason], skip{e.Package, e.Test})
		if e.Test == top {
			delete(pkg, top)
		}
	case "fail":
		t.failed[e.Test] = true
		s.failed++
		if e.Test == top {
			s.print(t)
			delete(pkg, top)
		}
	}
}

func (s *summary) packageEvent(e event) {
	switch e.Action {
	case "output":
		if strings.HasPrefix(e.Output, "FAIL") {
			s.flush(e.Package)
		}
		// go test without -v does not print a passing package's PASS.
		if e.Output != "PASS\n" {
			io.WriteString(s.out, e.Output)
		}
	case "fail":
		s.flush(e.Package)
	case "pass":
		delete(s.tests, e.Package)
	}
}

// flush prints the output of the package's tests still running when its
// test binary ended (a panic, a timeout): it says why.
func (s *summary) flush(pkg string) {
	names := make([]string, 0, len(s.tests[pkg]))
	for name := range s.tests[pkg] {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := s.tests[pkg][name]
		t.failed[name] = true
		s.failed++
		s.print(t)
	}
	delete(s.tests, pkg)
}

// print writes the output of a failed test and of its failed subtests, as
// go test without -v shows it.
func (s *summary) print(t *running) {
	for _, l := range t.lines {
		if t.failed[l.test] && !progressLine(l.text) {
			io.WriteString(s.out, l.text)
		}
	}
}

// progressLine reports whether text is one of the lines test2json mode adds
// to go test's usual output.
func progressLine(text string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return false
}

var logPrefix = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// skipReason returns the last line test logged before "--- SKIP", without
// its file:line prefix, which differs between callers of one helper.
func skipReason(lines []line, test string) string {
	reason := ""
	for _, l := range lines {
		if l.test != test || progressLine(l.text) || strings.HasPrefix(strings.TrimSpace(l.text), "--- SKIP") {
			continue
		}
		if r := strings.TrimSpace(logPrefix.ReplaceAllString(l.text, "")); r != "" {
			reason = r
		}
	}
	if reason == "" {
		return "(no reason given)"
	}
	return reason
}

func (s *summary) report() {
	n := 0
	reasons := make([]string, 0, len(s.skipped))
	for r, tests := range s.skipped {
		reasons = append(reasons, r)
		n += len(tests)
	}
	if n > 0 {
		sort.Strings(reasons)
		fmt.Fprintf(s.out, "\nskipped: %d tests\n", n)
		for _, r := range reasons {
			fmt.Fprintf(s.out, "  %s\n", r)
			byPkg := make(map[string][]string)
			var pkgs []string
			for _, sk := range s.skipped[r] {
				p := s.short(sk.pkg)
				if byPkg[p] == nil {
					pkgs = append(pkgs, p)
				}
				byPkg[p] = append(byPkg[p], sk.test)
			}
			sort.Strings(pkgs)
			for _, p := range pkgs {
				fmt.Fprintf(s.out, "    %s: %s\n", p, strings.Join(compact(byPkg[p]), " "))
			}
		}
	}
	fmt.Fprintf(s.out, "tests and subtests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, n)
}

// compact lists more than two skipped subtests of one parent as the
// parent's name and their number.
func compact(tests []string) []string {
	n := make(map[string]int)
	for _, t := range tests {
		if i := strings.LastIndex(t, "/"); i >= 0 {
			n[t[:i]]++
		}
	}
	var out []string
	seen := make(map[string]bool)
	for _, t := range tests {
		i := strings.LastIndex(t, "/")
		if i < 0 || n[t[:i]] <= 2 {
			out = append(out, t)
			continue
		}
		if parent := t[:i]; !seen[parent] {
			seen[parent] = true
			out = append(out, fmt.Sprintf("%s/ (%d subtests)", parent, n[parent]))
		}
	}
	return out
}

// short returns pkg relative to the module: "." for its root.
func (s *summary) short(pkg string) string {
	if s.module == "" {
		return pkg
	}
	if pkg == s.module {
		return "."
	}
	if rest, ok := strings.CutPrefix(pkg, s.module+"/"); ok {
		return "./" + rest
	}
	return pkg
}
