package demo_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/examples/demo"
)

// tricky is a title that would break out of a script element if it were
// not escaped.
const tricky = "</script><script>alert(1)</script> \"quoted\" \u2028 <!--"

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	res, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// TestForms checks what the app answers to good and bad form posts.
func TestForms(t *testing.T) {
	_, base := startDemo(t)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		body       string
	}{
		{"create", "/tasks", url.Values{"title": {"Write tests"}, "assignee": {"bob"}}, 200, "Write tests|todo|bob"},
		{"create with markup", "/tasks", url.Values{"title": {tricky}}, 200, tricky + "|todo|"},
		{"create without title", "/tasks", url.Values{"title": {"  "}}, 400, "bad input: a title of 1 to 200 characters is needed"},
		{"create for unknown user", "/tasks", url.Values{"title": {"x"}, "assignee": {"mallory"}}, 400, `bad input: unknown user "mallory"`},
		{"update", "/tasks/1", url.Values{"title": {"Renamed"}, "status": {"doing"}, "assignee": {"alice"}}, 200, "Renamed|doing|alice"},
		{"update with bad status", "/tasks/1", url.Values{"title": {"x"}, "status": {"lost"}}, 400, `bad input: unknown status "lost"`},
		{"update missing task", "/tasks/999", url.Values{"title": {"x"}}, 404, "no such task"},
		{"update bad id", "/tasks/abc", url.Values{"title": {"x"}}, 400, "bad input: bad task id"},
		{"delete", "/tasks/2/delete", nil, 204, ""},
		{"delete again", "/tasks/2/delete", nil, 404, "no such task"},
		{"note", "/notes?user=alice", url.Values{"to": {"bob"}, "text": {"hi"}}, 204, ""},
		{"note without login", "/notes", url.Values{"to": {"bob"}, "text": {"hi"}}, 401, "log in with ?user="},
		{"note to unknown user", "/notes?user=alice", url.Values{"to": {"eve"}, "text": {"hi"}}, 400, `bad input: unknown user "eve"`},
		{"empty note", "/notes?user=alice", url.Values{"to": {"bob"}}, 400, "bad input: a note of 1 to 500 characters is needed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, base+tc.path, tc.form)
			if status == http.StatusOK {
				// The task as written, which the page shows at once:
				// compared as "title|status|assignee".
				var task demo.Task
				if err := json.Unmarshal([]byte(body), &task); err != nil || task.ID == 0 || task.UpdatedAt.IsZero() {
					t.Errorf("POST %s: answer %q is not a written task: %v", tc.path, body, err)
				}
				body = task.Title + "|" + task.Status + "|" + task.Assignee
			}
			if status != tc.status || body != tc.body {
				t.Errorf("POST %s: %d %q, want %d %q", tc.path, status, body, tc.status, tc.body)
			}
		})
	}

	res, err := http.Get(base + "/?user=alice")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`id="telegraphy-config"`, `"token":"`, `"demo.Task":{"epoch":`, `"user:alice":{"epoch":`, `"title":"Renamed"`, `"Write tests"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("board page lacks %s", want)
		}
	}
	if strings.Contains(string(page), "<script>alert(1)") {
		t.Error("a task title reached the page unescaped")
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="initial-tasks">(.*?)</script>`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no initial-tasks element")
	}
	var tasks []demo.Task
	if err := json.Unmarshal(m[1], &tasks); err != nil {
		t.Fatalf("initial tasks are not JSON: %v\n%s", err, m[1])
	}
	if len(tasks) != 4 || tasks[3].Title != tricky {
		t.Errorf("initial tasks %+v, want 4 with the last titled %q", tasks, tricky)
	}
	if regexp.MustCompile(`Edit a task and watch`).Match(page) {
		t.Error("the deleted task is still on the board")
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("board page Cache-Control %q, want no-store (it holds a single-use token)", cc)
	}

	res, err = http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(page), "telegraphy-config") || !strings.Contains(string(page), `href="/?user=bob"`) {
		t.Errorf("page without a user should offer the users and hold no token:\n%s", page)
	}
}
