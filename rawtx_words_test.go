package telegraphy

import "testing"

// TestTxStatements: which statements begin or end a transaction begun
// with SQL, and which do not (savepoints, two-phase commit, several
// statements in one string, other statements).
func TestTxStatements(t *testing.T) {
	begins := []string{"BEGIN", "begin;", "  BEGIN WORK", "BEGIN TRANSACTION", "BEGIN IMMEDIATE", "begin exclusive transaction",
		"START TRANSACTION", "start transaction read only", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE ;",
		"/* x */ BEGIN", "-- a\nBEGIN", "/* a */ /* b */\n BEGIN /* c */;"}
	notBegins := []string{"", "BEGINS", "START", "START SLAVE", "SELECT 1", "BEGIN; INSERT INTO t VALUES (1)", "COMMIT", "begin\u00a0;x", "/* BEGIN */ SELECT 1", "-- BEGIN"}
	for _, q := range begins {
		if !beginsTx(q) {
			t.Errorf("beginsTx(%q) = false", q)
		}
	}
	for _, q := range notBegins {
		if beginsTx(q) {
			t.Errorf("beginsTx(%q) = true", q)
		}
	}
	ends := []struct {
		q     string
		end   txEnd
		chain bool
	}{
		{"COMMIT", txCommits, false}, {"commit;", txCommits, false}, {"END", txCommits, false},
		{"END TRANSACTION", txCommits, false}, {"COMMIT WORK", txCommits, false},
		{"COMMIT AND NO CHAIN", txCommits, false}, {"COMMIT AND CHAIN", txCommits, true},
		{"COMMIT WORK AND CHAIN NO RELEASE", txCommits, true}, {"COMMIT RELEASE", txCommits, false},
		{"ROLLBACK", txRollsBack, false}, {"rollback work", txRollsBack, false}, {"ABORT", txRollsBack, false},
		{"ROLLBACK TRANSACTION", txRollsBack, false}, {"ROLLBACK AND CHAIN", txRollsBack, true},
		{"ROLLBACK TO sp", txKeeps, false}, {"ROLLBACK TO SAVEPOINT sp", txKeeps, false},
		{"ROLLBACK WORK TO SAVEPOINT sp", txKeeps, false}, {"COMMIT PREPARED 'x'", txKeeps, false},
		{"ROLLBACK PREPARED 'x'", txKeeps, false}, {"COMMIT; BEGIN", txKeeps, false},
		{"COMMITTED", txKeeps, false}, {"/* x */ COMMIT", txCommits, false},
		{"COMMIT /* x */", txCommits, false}, {"-- done\nROLLBACK -- now", txRollsBack, false},
		{"/* unterminated COMMIT", txKeeps, false}, {"ROLLBACK /* x */ TO sp", txKeeps, false}, {"RELEASE SAVEPOINT sp", txKeeps, false}, {"SELECT 1", txKeeps, false},
	}
	for _, c := range ends {
		if end, chain := endsTx(c.q); end != c.end || chain != c.chain {
			t.Errorf("endsTx(%q) = %v, %v; want %v, %v", c.q, end, chain, c.end, c.chain)
		}
	}
}
