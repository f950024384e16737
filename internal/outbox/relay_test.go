package outbox

import (
	"fmt"
	"testing"
)

// TestPublishedRuns: the runs a read leaves out cover exactly the
// published IDs, whatever order the batches came in.
func TestPublishedRuns(t *testing.T) {
	for _, c := range []struct {
		ids  []uint64
		want string
	}{
		{nil, "[]"},
		{[]uint64{5}, "[[5 5]]"},
		{[]uint64{1, 2, 3}, "[[1 3]]"},
		{[]uint64{1, 2, 4, 5}, "[[1 2] [4 5]]"},
		{[]uint64{10, 11, 3, 12}, "[[3 3] [10 12]]"}, // a late lower ID read after a batch
		{[]uint64{7, 8, 9, 4, 5, 6}, "[[4 9]]"},      // a late run closes the gap
		{[]uint64{2, 2, 3}, "[[2 3]]"},               // duplicates do not split a run
		{[]uint64{1, 1000, 2000}, "[[1 1] [1000 1000] [2000 2000]]"},
	} {
		if got := fmt.Sprint(published(c.ids)); got != c.want {
			t.Errorf("published(%v) = %s, want %s", c.ids, got, c.want)
		}
	}
}
