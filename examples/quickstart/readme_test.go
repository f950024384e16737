package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeScaffold wraps the README's quick start (its imports, then its
// body) into a program: an Order model, stand-ins for the app's login,
// and a check that creates an order and prints the events a broker
// subscription receives.
const readmeScaffold = `package main

IMPORTS

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type Order struct {
	ID     uint   ` + "`json:\"id\"`" + `
	UserID uint   ` + "`json:\"user_id\"`" + `
	Status string ` + "`json:\"status\"`" + `
	Secret string
}

type user struct{ ID string }

func currentUser(*http.Request) user           { return user{ID: "17"} }
func requireLogin(h http.Handler) http.Handler { return h }

func quickStart(db *gorm.DB, mux *http.ServeMux, secret []byte) error {
BODY
	_ = tpl
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx)
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := sub.Add(ctx, "shop.Order", "user:17"); err != nil {
		return err
	}
	if err := db.Create(&Order{UserID: 17, Status: "new", Secret: "s3cret"}).Error; err != nil {
		return err
	}
	for range 2 {
		select {
		case pub := <-sub.C():
			fmt.Printf("%s %s\n", pub.Channel, pub.Data)
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no event")
		}
	}
	return nil
}

func main() {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err == nil {
		err = db.AutoMigrate(&Order{})
	}
	if err == nil {
		err = quickStart(db, http.NewServeMux(), []byte("0123456789abcdef0123456789abcdef"))
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}
`

// TestREADMEQuickStart copies the README's quick start into a fresh
// module (this repository replacing the published one), builds it and
// runs it: an order created through GORM reaches a broker subscription as
// a create event without its excluded field. With a typo in Exclude the
// program fails at Register, naming the field.
func TestREADMEQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Quick start")
	_, code, ok2 := strings.Cut(section, "```go\n")
	code, _, ok3 := strings.Cut(code, "```")
	imports, body, ok4 := strings.Cut(code, ")\n")
	if !ok || !ok2 || !ok3 || !ok4 || !strings.HasPrefix(imports, "import (") {
		t.Fatal("README.md: no ```go block of imports and code under \"## Quick start\"")
	}
	program := strings.NewReplacer("IMPORTS", imports+")", "BODY", body).Replace(readmeScaffold)
	goSum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion, err := exec.Command("go", "list", "-m", "-f", "{{.GoVersion}}", "github.com/telegraphy-go/telegraphy").Output()
	if err != nil {
		t.Fatal(err)
	}

	run := func(program string) (string, error) {
		dir := t.TempDir()
		mod := "module quickstart\n\ngo " + strings.TrimSpace(string(goVersion)) + "\n\n" +
			"require github.com/telegraphy-go/telegraphy v0.0.0\n\n" +
			"replace github.com/telegraphy-go/telegraphy => " + root + "\n"
		for name, data := range map[string]string{"go.mod": mod, "go.sum": string(goSum), "main.go": program} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The module's requirements come from the module cache that built
		// this test, and from the module proxy for what the cache lacks:
		// the fresh module's graph can need a go.mod the project's own
		// build never read (the older go-sqlite3 that gorm.io/driver/sqlite
		// v1.5.0 asks for). go.sum comes from the project; what it lacks
		// is not checked against the checksum database.
		env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOSUMDB=off")
		// -e: a module only the tests of a dependency import may be
		// missing from the cache; the program does not need it.
		tidy := exec.Command("go", "mod", "tidy", "-e")
		tidy.Dir, tidy.Env = dir, env
		if out, err := tidy.CombinedOutput(); err != nil {
			t.Fatalf("go mod tidy: %v\n%s", err, out)
		}
		cmd := exec.Command("go", "run", ".")
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(program)
	if err != nil {
		t.Fatalf("the README's quick start: %v\n%s\n%s", err, out, program)
	}
	for _, want := range []string{
		`shop.Order {"name":"shop.Order","meta":{"event_type":"create",`,
		`user:17 {"name":"shop.Order","meta":{"event_type":"create",`,
		`"data":{"id":1,"user_id":17,"status":"new"}}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("the excluded field was sent:\n%s", out)
	}

	typo := strings.Replace(program, `Exclude:  []string{"Secret"}`, `Exclude:  []string{"Secert"}`, 1)
	if typo == program {
		t.Fatal(`the quick start no longer has Exclude: []string{"Secret"}`)
	}
	out, err = run(typo)
	if err == nil || !strings.Contains(out, `error: telegraphy: unknown field "Secert" in main.Order`) {
		t.Errorf("with a typo in Exclude: %v\n%s", err, out)
	}
}
