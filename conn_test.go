package telegraphy

import "testing"

func TestSavepointOp(t *testing.T) {
	cases := []struct {
		q    string
		op   spOp
		name string
	}{
		{"SAVEPOINT sp1", spSet, "sp1"},
		{"  savepoint `sp1`;", spSet, "sp1"},
		{"\n\tSAVEPOINT \"a\"", spSet, "a"},
		{"ROLLBACK TO SAVEPOINT sp1", spRollback, "sp1"},
		{"rollback to sp2", spRollback, "sp2"},
		{"RELEASE SAVEPOINT sp1", spRelease, "sp1"},
		{"\u00a0SAVEPOINT x", spSet, "x"},
		{"ROLLBACK", spNone, ""},
		{"SELECT 1", spNone, ""},
		{"SAVEPOINT", spNone, ""},
		{"INSERT INTO t VALUES (1)", spNone, ""},
		{"UPDATE t SET a = 1", spNone, ""},
		{"  ", spNone, ""},
		{"", spNone, ""},
	}
	for _, c := range cases {
		if op, name := savepointOp(c.q); op != c.op || name != c.name {
			t.Errorf("savepointOp(%q) = %v %q, want %v %q", c.q, op, name, c.op, c.name)
		}
	}
}
