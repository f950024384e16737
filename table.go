package telegraphy

import (
	"database/sql"
	"strings"
	"unicode/utf8"

	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// A statement of a registered model writes the table db.Table names, when
// it names one, and the model's own table (its schema's) otherwise. Its
// events say what the model's table holds, so a statement that writes
// another table (db.Table("things_archive").Create(&thing), an archive
// table, a partition, a table of another schema) emits nothing for the
// model, and runs exactly as without the plugin.
//
// The table db.Table names is compared with the model's as the database
// resolves names:
//
//   - PostgreSQL folds unquoted identifiers to lower case and keeps quoted
//     ones as they are; a schema-qualified name (or a database-qualified
//     one naming the current database) is the model's table when it is
//     the relation the model's name finds (to_regclass of both);
//   - MySQL and MariaDB compare table and database names as
//     lower_case_table_names says (case-sensitive at 0, the Linux
//     default), quoted or not; a database qualifier is the model's when
//     it names the current database (DATABASE());
//   - SQLite compares identifiers without regard to ASCII case, quoted
//     or not; a schema qualifier is the model's when the model's name
//     finds its table in that schema (temp, then main, then the attached
//     databases in order).
//
// An alias (db.Table("things AS t"), "things t") leaves the table what it
// is, and so does a clause.Table argument (db.Table("?",
// clause.Table{...})). An expression that is not one table name with an
// optional alias (a join, a subquery, a placeholder for a value) cannot be
// resolved this way: it is taken as the model's table when it names it
// anywhere (the plugin then sends what it sends for a table expression of
// the model's table: one bulk event for an update or delete it cannot
// read apart from the statement), and as another table when it does not.
//
// A table that another registered model maps to is not announced as that
// model: the statement's columns, keys and rows are the statement's
// model's, and reading them as the other model's would guess.

// ident is one identifier of a table name as SQL spells it.
type ident struct {
	name   string
	quoted bool
}

// ownTable reports whether the statement, of operation op, writes its
// model's own table.
func ownTable(db *gorm.DB, op events.Operation) bool {
	stmt := db.Statement
	if op == events.OpCreate {
		if c, ok := stmt.Clauses["INSERT"]; ok {
			if ins, ok := c.Expression.(clause.Insert); ok && ins.Table.Name != "" && !ins.Table.Raw {
				// The INSERT names its table itself, whatever db.Table
				// says: GORM quotes the name, part by part.
				return ins.Table.Name == stmt.Schema.Table ||
					sameTable(db, splitQuoted(ins.Table.Name), splitQuoted(stmt.Schema.Table))
			}
		}
	}
	if stmt.TableExpr == nil && (stmt.Table == "" || stmt.Table == stmt.Schema.Table) {
		return true // no db.Table: the common case, without a split
	}
	own := splitQuoted(stmt.Schema.Table)
	var ref []ident
	switch e := stmt.TableExpr; {
	case op == events.OpCreate && stmt.Table != stmt.Schema.Table && db.Dialector.Name() == "sqlite" && !insertNamesTable(stmt):
		// GORM's SQLite INSERT names stmt.Table, not the table
		// expression: the alias of db.Table("t AS a"), the name without
		// the schema of a model's "schema.t".
		ref = splitQuoted(stmt.Table)
	case e != nil:
		if e.SQL == stmt.Quote(stmt.Schema.Table) {
			return true
		}
		text := e.SQL
		if len(e.Vars) > 0 {
			// As GORM writes it: a clause.Table argument quoted, any
			// other a placeholder.
			b := &gorm.Statement{DB: db, Context: stmt.Context, Clauses: map[string]clause.Clause{}}
			e.Build(b)
			text = b.SQL.String()
		}
		tokens, ok := scanIdents(db.Dialector.Name(), text)
		if ref, _, ok = singleTable(db.Dialector.Name(), tokens, ok); !ok {
			return mentions(db.Dialector.Name(), tokens, own[len(own)-1])
		}
	case stmt.Table != "" && stmt.Table != stmt.Schema.Table:
		ref = splitQuoted(stmt.Table)
	default:
		return true
	}
	return sameTable(db, ref, own)
}

// insertNamesTable reports whether the statement's INSERT clause names
// its table itself (clause.Insert{Table: ...}).
func insertNamesTable(stmt *gorm.Statement) bool {
	c, ok := stmt.Clauses["INSERT"]
	if !ok {
		return false
	}
	ins, ok := c.Expression.(clause.Insert)
	return ok && ins.Table.Name != ""
}

// splitQuoted splits a table name as GORM quotes it: at each dot, every
// part quoted.
func splitQuoted(table string) []ident {
	parts := strings.Split(table, ".")
	out := make([]ident, len(parts))
	for i, p := range parts {
		out[i] = ident{name: p, quoted: true}
	}
	return out
}

// A token of a table expression: an identifier, or any other symbol
// (punct holds it; strings and numbers are kept as "'" and "0").
type token struct {
	ident
	punct string
}

// scanIdents splits a table expression into tokens; false when it ends
// inside a quoted identifier or string.
func scanIdents(dialect, s string) ([]token, bool) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '`' || c == '[' && dialect == "sqlite":
			end := byte(c)
			if c == '[' {
				end = ']'
			}
			var b strings.Builder
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == end {
					if end != ']' && j+1 < len(s) && s[j+1] == end {
						b.WriteByte(end)
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return out, false
			}
			out = append(out, token{ident: ident{name: b.String(), quoted: true}})
			i = j + 1
		case c == '\'':
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\\' && dialect == "mysql" {
					j++
				} else if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(s) {
				return out, false
			}
			out = append(out, token{punct: "'"})
			i = j + 1
		case identStart(c):
			j := i + 1
			for j < len(s) && (identStart(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '$') {
				j++
			}
			out = append(out, token{ident: ident{name: s[i:j]}})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{punct: "0"})
			i = j
		default:
			out = append(out, token{punct: string(c)})
			i++
		}
	}
	return out, true
}

// identStart reports whether c may begin an unquoted identifier; bytes of
// non-ASCII letters may, as in all three databases.
func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// singleTable returns the name of the one table tokens name, as
// [qualifier.]...name [[AS] alias], and its alias (name "" without one);
// false when they are anything else.
func singleTable(dialect string, tokens []token, ok bool) ([]ident, ident, bool) {
	if !ok || len(tokens) == 0 || tokens[0].punct != "" {
		return nil, ident{}, false
	}
	if first := tokens[0]; !first.quoted && dialect == "postgres" && strings.EqualFold(first.name, "only") {
		return nil, ident{}, false // UPDATE ONLY t: a modifier, not a table
	}
	ref := []ident{tokens[0].ident}
	i := 1
	for i+1 < len(tokens) && tokens[i].punct == "." && tokens[i+1].punct == "" {
		ref = append(ref, tokens[i+1].ident)
		i += 2
	}
	if len(ref) > 3 {
		return nil, ident{}, false
	}
	rest := tokens[i:]
	if len(rest) > 0 && rest[0].punct == "" && !rest[0].quoted && strings.EqualFold(rest[0].name, "as") {
		rest = rest[1:]
		if len(rest) == 0 {
			return nil, ident{}, false
		}
	}
	switch {
	case len(rest) == 0:
		return ref, ident{}, true
	case len(rest) == 1 && rest[0].punct == "":
		return ref, rest[0].ident, true
	}
	return nil, ident{}, false
}

// The plugin's own reads (the rows before and after a write, the keys
// and rowids an upsert compares, the row type of rows a statement
// returned) name the model's table as the model declares it: with the
// schema or database its TableName gives, and never by the statement's
// alias, which names nothing outside the statement. ownTable has found
// that the statement writes that table. What the plugin adds to the
// statement itself (a RETURNING clause, the columns a CTE wrapping it
// takes) names the table as the statement does: by its alias, when it
// has one (tableRef).

// readTable returns the name of the table the plugin's reads name, for
// stmt.Quote or db.Table.
func readTable(stmt *gorm.Statement) string { return stmt.Schema.Table }

// tableRef returns the name by which the statement's own SQL refers to its
// table: the alias its table expression gives, else stmt.Table (GORM sets
// it to the alias of db.Table("t AS a"), and to the table's name without
// its qualifier).
func tableRef(db *gorm.DB) string {
	stmt := db.Statement
	e := stmt.TableExpr
	if e == nil || len(e.Vars) == 0 && !strings.ContainsAny(e.SQL, "\"`[") {
		return stmt.Table
	}
	// A clause.Table argument with an alias (GORM writes `"t" "a"`), or a
	// quoted alias, which GORM leaves stmt.Table the model's table for.
	if alias, ok := tableAlias(db); ok && alias != "" {
		return alias
	}
	return stmt.Table
}

// tableAlias returns the alias the statement's table expression gives
// its table, "" without one; false when the expression is not one table
// name with an optional alias.
func tableAlias(db *gorm.DB) (string, bool) {
	stmt := db.Statement
	e := stmt.TableExpr
	if e == nil {
		return "", true
	}
	text := e.SQL
	if len(e.Vars) > 0 {
		b := &gorm.Statement{DB: db, Context: stmt.Context, Clauses: map[string]clause.Clause{}}
		e.Build(b)
		text = b.SQL.String()
	}
	tokens, ok := scanIdents(db.Dialector.Name(), text)
	_, alias, ok := singleTable(db.Dialector.Name(), tokens, ok)
	return alias.name, ok
}

// mentions reports whether any identifier of tokens could name the table
// name: a loose test for expressions that are not one table.
func mentions(dialect string, tokens []token, name ident) bool {
	for _, t := range tokens {
		if t.punct == "" && (sameName(dialect, t.ident, name, false) || sameName(dialect, t.ident, name, true)) {
			return true
		}
	}
	return false
}

// sameName reports whether two identifiers name the same object, folding
// case as the dialect does (MySQL: when fold, as lower_case_table_names
// other than 0 makes it).
func sameName(dialect string, a, b ident, fold bool) bool {
	switch dialect {
	case "postgres":
		return pgFold(a) == pgFold(b)
	case "sqlite":
		return asciiLower(a.name) == asciiLower(b.name)
	}
	if fold {
		return strings.EqualFold(a.name, b.name)
	}
	return a.name == b.name
}

func pgFold(a ident) string {
	if a.quoted {
		return a.name
	}
	return asciiLower(a.name)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// sameTable reports whether the table names ref and own name one table of
// the statement's database; false when the database cannot tell (the
// statement then fails, or writes another table).
func sameTable(db *gorm.DB, ref, own []ident) bool {
	d := db.Dialector.Name()
	stmt := db.Statement
	switch d {
	case "postgres":
		if !sameName(d, ref[len(ref)-1], own[len(own)-1], false) {
			return false
		}
		if sameParts(d, ref, own) {
			return true
		}
		if !sendable(ref) || !sendable(own) {
			// PostgreSQL would refuse the text, aborting the transaction:
			// the statement fails on it anyway.
			return false
		}
		var same bool
		err := queryOne(stmt, &same, pgSameRelation, pgCatalog(ref), pgCatalog(own),
			pgSchema(ref), pgFold(ref[len(ref)-1]), pgSchema(own), pgFold(own[len(own)-1]))
		return err == nil && same
	case "sqlite":
		if len(ref) > 2 || len(own) > 2 || !sameName(d, ref[len(ref)-1], own[len(own)-1], false) {
			return false
		}
		if sameParts(d, ref, own) {
			return true
		}
		a, b := sqliteSchema(stmt, ref), sqliteSchema(stmt, own)
		return a != "" && a == b
	case "mysql":
		if len(ref) > 2 || len(own) > 2 {
			return false
		}
		if len(ref) == 1 && len(own) == 1 && ref[0].name == own[0].name {
			return true
		}
		var current sql.NullString
		var lower int
		if err := queryRow(stmt, []any{&current, &lower}, "SELECT DATABASE(), @@lower_case_table_names"); err != nil {
			return false
		}
		fold := lower != 0
		qualifier := func(r []ident) ident {
			if len(r) == 2 {
				return r[0]
			}
			return ident{name: current.String}
		}
		return sameName(d, ref[len(ref)-1], own[len(own)-1], fold) && sameName(d, qualifier(ref), qualifier(own), fold)
	}
	return sameParts(d, ref, own)
}

// sendable reports whether PostgreSQL accepts the parts of r as text.
func sendable(r []ident) bool {
	for _, p := range r {
		if !utf8.ValidString(p.name) || strings.ContainsRune(p.name, 0) {
			return false
		}
	}
	return true
}

// sameParts reports whether two table names are spelled alike, part by
// part, as the dialect compares identifiers.
func sameParts(dialect string, a, b []ident) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameName(dialect, a[i], b[i], false) {
			return false
		}
	}
	return true
}

// pgCatalog returns the database part of a three-part PostgreSQL name, ""
// without one.
func pgCatalog(r []ident) string {
	if len(r) == 3 {
		return pgFold(r[0])
	}
	return ""
}

// pgSchema returns the schema part of r, "" when it has none.
func pgSchema(r []ident) string {
	if len(r) >= 2 {
		return pgFold(r[len(r)-2])
	}
	return ""
}

// pgSameRelation tells whether two names, each a catalog ($1, $2: "" or
// the current database's), a schema ($3, $5: "" for the search path) and
// a relation name ($4, $6), find one relation, as to_regclass would
// resolve them, from the catalog alone: to_regclass fails on a schema
// the role may not use, and its error would abort the caller's
// transaction. current_schemas(true) is the search path the role may use,
// implicit schemas included, in order.
const pgSameRelation = `WITH path AS (SELECT current_schemas(true) AS s)
SELECT COALESCE(($1 = '' OR $1 = current_database()) AND ($2 = '' OR $2 = current_database()) AND
	(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, path
		WHERE c.relname = $4 AND ($3 = '' AND n.nspname = ANY(path.s) OR n.nspname = $3)
		ORDER BY array_position(path.s, n.nspname) LIMIT 1) =
	(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, path
		WHERE c.relname = $6 AND ($5 = '' AND n.nspname = ANY(path.s) OR n.nspname = $5)
		ORDER BY array_position(path.s, n.nspname) LIMIT 1), false)`

// sqliteSchema returns the schema (lower case) holding the table r names:
// its qualifier, or the first schema SQLite searches that has it; "" when
// none has it or the read fails.
func sqliteSchema(stmt *gorm.Statement, r []ident) string {
	if len(r) == 2 {
		return asciiLower(r[0].name)
	}
	var schema string
	err := queryOne(stmt, &schema, `SELECT t.schema FROM pragma_table_list AS t JOIN pragma_database_list AS d ON d.name = t.schema
	WHERE t.name = ? COLLATE NOCASE ORDER BY CASE t.schema WHEN 'temp' THEN 0 WHEN 'main' THEN 1 ELSE 2 END, d.seq LIMIT 1`, r[0].name)
	if err != nil {
		return ""
	}
	return asciiLower(schema)
}
