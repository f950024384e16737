package model

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/wire"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

var (
	eventerType      = reflect.TypeFor[events.Eventer]()
	dataProviderType = reflect.TypeFor[events.DataProvider]()
	marshalerType    = reflect.TypeFor[json.Marshaler]()
	valuerType       = reflect.TypeFor[driver.Valuer]()
	timeType         = reflect.TypeFor[time.Time]()
	deletedAtType    = reflect.TypeFor[gorm.DeletedAt]()
	emptyCtx         = context.Background()
)

// IsEventer reports whether the struct type t (or a pointer to it)
// implements events.Eventer.
func IsEventer(t reflect.Type) bool {
	return t.Implements(eventerType) || reflect.PointerTo(t).Implements(eventerType)
}

// Model is a registered model type: its Options resolved against its
// fields. It is immutable after NewModel and safe for concurrent use.
type Model struct {
	// Type is the model's struct type.
	Type reflect.Type
	// Name is the event name and model channel.
	Name string
	// Options are the options it was registered with.
	Options events.Options

	schema  *schema.Schema
	data    []*column // the columns sent in data, in schema order
	pk      []*column
	version *column      // Options.Version, or nil
	deleted *column      // the gorm.DeletedAt field, or nil
	times   []timeColumn // the columns of a time type (StoredTimes)
	// audience are the fields (Go names) read before an update of a model
	// with Channels: nil reads whole rows (see Options.ChannelFields).
	// Go names, not columns: the database's naming strategy may differ
	// from the one the model was parsed with.
	audience []string
	byDBName map[string]*column
	provider bool
	// storesOther holds StoresOther's answer by dialect name.
	storesOther sync.Map

	// Precomputed parts of every event of the model (see Encode).
	head      []byte       // {"name":<name>,"meta":{"event_type":
	verbose   []byte       // ,"verbose_name":<VerboseName>, or empty
	recordPfx string       // "<name>:"
	sizeHint  atomic.Int64 // the largest event encoded so far
}

type column struct {
	field *schema.Field
	json  string // JSON name
	key   []byte // `"json":`
	sent  bool   // not hidden by `json:"-"`
	data  bool   // sent in data under the model's Fields/Exclude
	enc   encoder
}

// encoder appends the JSON encoding of v, one column's value.
type encoder func(b []byte, v reflect.Value) ([]byte, error)

var parseCache sync.Map

// NewModel resolves opts against model, a struct value or pointer. It
// fails with events.ErrNotStruct, events.ErrNoPrimaryKey or events.ErrUnknownField.
func NewModel(model any, opts events.Options) (*Model, error) {
	t := reflect.TypeOf(model)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v", events.ErrNotStruct, reflect.TypeOf(model))
	}
	s, err := schema.Parse(reflect.New(t).Interface(), &parseCache, schema.NamingStrategy{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", events.ErrNotStruct, t, err)
	}
	if len(s.PrimaryFields) == 0 {
		return nil, fmt.Errorf("%w: %v", events.ErrNoPrimaryKey, t)
	}
	m := &Model{
		Type:     t,
		Name:     opts.Name,
		Options:  opts,
		schema:   s,
		byDBName: make(map[string]*column, len(s.DBNames)),
		provider: reflect.PointerTo(t).Implements(dataProviderType),
	}
	if m.Name == "" {
		m.Name = path.Base(t.PkgPath()) + "." + t.Name()
	}
	m.head = append(wire.AppendString([]byte(`{"name":`), m.Name), `,"meta":{"event_type":`...)
	if opts.VerboseName != "" {
		m.verbose = wire.AppendString([]byte(`,"verbose_name":`), opts.VerboseName)
	}
	m.recordPfx = m.Name + ":"
	byName := make(map[string]*column)
	var cols []*column
	for _, dbName := range s.DBNames {
		f := s.FieldsByDBName[dbName]
		c := &column{field: f, json: jsonName(f), enc: encoderFor(f.StructField.Type)}

		c.key = append(strconv.AppendQuote(nil, c.json), ':')
		c.sent = c.json != "-"
		cols = append(cols, c)
		m.byDBName[dbName] = c
		byName[f.Name] = c
		if c.json != "-" {
			if _, ok := byName[c.json]; !ok {
				byName[c.json] = c
			}
		}
	}
	for _, f := range s.PrimaryFields {
		m.pk = append(m.pk, m.byDBName[f.DBName])
	}
	pick := func(names []string) (map[*column]bool, error) {
		set := make(map[*column]bool, len(names))
		for _, n := range names {
			c, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("%w %q in %v", events.ErrUnknownField, n, t)
			}
			set[c] = true
		}
		return set, nil
	}
	include, err := pick(opts.Fields)
	if err != nil {
		return nil, err
	}
	exclude, err := pick(opts.Exclude)
	if err != nil {
		return nil, err
	}
	if opts.Version != "" {
		c, ok := byName[opts.Version]
		if !ok {
			return nil, fmt.Errorf("%w %q (Version) in %v", events.ErrUnknownField, opts.Version, t)
		}
		if !isVersionType(c.field.FieldType) {
			return nil, fmt.Errorf("%w: %v.%s is %v", events.ErrVersionType, t, c.field.Name, c.field.FieldType)
		}
		m.version = c
	}
	m.times = timeColumns(cols)
	for _, c := range cols {
		if c.field.FieldType == deletedAtType {
			m.deleted = c
			break
		}
	}
	if len(opts.ChannelFields) > 0 {
		if opts.Channels == nil {
			return nil, fmt.Errorf("%w (%v)", events.ErrChannelFields, t)
		}
		seen := map[*column]bool{}
		add := func(c *column) {
			if c != nil && !seen[c] {
				seen[c] = true
				m.audience = append(m.audience, c.field.Name)
			}
		}
		for _, c := range m.pk {
			add(c)
		}
		add(m.deleted)
		for _, n := range opts.ChannelFields {
			c, ok := byName[n]
			if !ok {
				c, ok = m.byDBName[n]
			}
			if !ok {
				return nil, fmt.Errorf("%w %q (ChannelFields) in %v", events.ErrUnknownField, n, t)
			}
			add(c)
		}
	}
	for _, c := range cols {
		if !c.sent {
			continue
		}
		if len(opts.Fields) > 0 {
			if !include[c] {
				continue
			}
		} else if exclude[c] {
			continue
		}
		c.data = true
		m.data = append(m.data, c)
	}
	// Two columns of data with one JSON name (the same struct embedded
	// twice with embeddedPrefix): the later ones go by their column name
	// (made unique against every declared name), so that data has no
	// duplicate key.
	declared := make(map[string]bool, len(cols))
	for _, c := range cols {
		declared[c.json] = true
	}
	seen := make(map[string]bool, len(m.data))
	for _, c := range m.data {
		if seen[c.json] {
			name := c.field.DBName
			for i := 2; declared[name] || seen[name]; i++ {
				name = c.field.DBName + "_" + strconv.Itoa(i)
			}
			c.json = name
			c.key = append(strconv.AppendQuote(nil, name), ':')
		}
		seen[c.json] = true
	}
	return m, nil
}

// isVersionType reports whether a field of type t can be a version: an
// integer, a time.Time, a pointer to either, or a driver.Valuer.
func isVersionType(t reflect.Type) bool {
	if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return t == timeType
}

// appendVersion appends `,"version":<v>` for the version v: an integer as
// a number, a time as events.VersionTimeFormat. A nil pointer, a null Valuer or a
// Valuer giving another type appends nothing.
func appendVersion(b []byte, v reflect.Value) []byte {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return b
		}
		if !v.Type().Implements(valuerType) {
			v = v.Elem()
		}
	}
	var x any
	switch {
	case v.Type() == timeType:
		x = v.Interface()
	case v.Type().Implements(valuerType) || v.CanAddr() && v.Addr().Type().Implements(valuerType):
		if v.Kind() != reflect.Pointer && !v.Type().Implements(valuerType) {
			v = v.Addr()
		}
		val, err := v.Interface().(driver.Valuer).Value()
		if err != nil {
			return b
		}
		x = val
	case v.CanInt():
		x = v.Int()
	case v.CanUint():
		x = v.Uint()
	}
	b = append(b, `,"version":`...)
	switch x := x.(type) {
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, events.VersionTimeFormat)
		return append(b, '"')
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	}
	return b[:len(b)-len(`,"version":`)]
}

// jsonName is the key encoding/json would use for f.
func jsonName(f *schema.Field) string {
	tag, ok := f.StructField.Tag.Lookup("json")
	if !ok {
		return f.Name
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	// "-" hides the field; `json:"-,"` (the key "-") is hidden as well,
	// erring on the side of not sending.
	return name
}

// Column returns the JSON name of the column dbName and whether it may be
// named in meta.changed: it is sent in data (Fields, Exclude and
// `json:"-"` applied), or, for a model supplying EventData, it is not
// hidden by `json:"-"`.
func (m *Model) Column(dbName string) (jsonName string, ok bool) {
	c := m.byDBName[dbName]
	if c == nil || !c.sent || (!m.provider && !c.data) {
		return "", false
	}
	return c.json, true
}

// FieldColumn is Column for the field of the model that bindName (a
// schema.Field's BindName: "Embedded.Field" for embedded fields) names.
// A statement's columns are named by the database's naming strategy,
// which may differ from the one the model was parsed with: its fields
// are matched by their Go names.
func (m *Model) FieldColumn(bindName string) (jsonName string, ok bool) {
	f := m.schema.FieldsByBindName[bindName]
	if f == nil || f.DBName == "" {
		return "", false
	}
	return m.Column(f.DBName)
}

// StoresOther reports whether a create of the model's structs on the
// dialect named (GORM's Dialector.Name) may store another value than the
// structs hold in some column, as decide says of the model's schema.
// decide runs once per dialect (twice at most when two goroutines ask
// first at once); its answer is kept.
func (m *Model) StoresOther(dialect string, decide func(*schema.Schema) bool) bool {
	if v, ok := m.storesOther.Load(dialect); ok {
		return v.(bool)
	}
	b := decide(m.schema)
	m.storesOther.Store(dialect, b)
	return b
}

// AudienceFields returns the fields (Go names) to read before an update
// of a model with Channels, to know the channels each row was in: the
// primary key, the soft-delete field and Options.ChannelFields; nil for
// whole rows.
func (m *Model) AudienceFields() []string { return m.audience }

// Moves reports whether a write assigning the fields names (Go names) can
// change the channels of a row: always for a model without ChannelFields.
func (m *Model) Moves(names []string) bool {
	if m.audience == nil {
		return true
	}
	for _, n := range names {
		if slices.Contains(m.audience, n) {
			return true
		}
	}
	return false
}

// Audience returns the channels Options.Channels gives the row v (a
// struct of the model's type), empty ones left out; none for a row that
// is soft-deleted (a gorm.DeletedAt field that is set), which no
// channel shows.
func (m *Model) Audience(v reflect.Value) []string {
	if m.Options.Channels == nil {
		return nil
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if m.deleted != nil {
		if d, ok := valueOf(m.deleted.field, v).Interface().(gorm.DeletedAt); ok && d.Valid {
			return nil
		}
	}
	return m.Channels(v)
}

// Channels returns the channels Options.Channels gives v, a struct of the
// model's type, empty ones left out.
func (m *Model) Channels(v reflect.Value) []string {
	var ptr any
	if v.CanAddr() {
		ptr = v.Addr().Interface()
	} else {
		pv := reflect.New(v.Type())
		pv.Elem().Set(v)
		ptr = pv.Interface()
	}
	all := m.Options.Channels(ptr)
	out := make([]string, 0, len(all))
	for _, c := range all {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// Schema is the GORM schema the model was parsed into with the default
// naming strategy: field and primary key metadata only.
func (m *Model) Schema() *schema.Schema { return m.schema }

// Data encodes the event data of v, a struct of the model's type (a
// pointer to one is accepted too).
func (m *Model) Data(v reflect.Value) (json.RawMessage, error) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return json.RawMessage("null"), nil
		}
		v = v.Elem()
	}
	return m.appendData(make([]byte, 0, 16*(len(m.data)+1)), v)
}

func (m *Model) appendData(b []byte, v reflect.Value) ([]byte, error) {
	if m.provider {
		var p any
		if v.CanAddr() {
			p = v.Addr().Interface()
		} else {
			pv := reflect.New(m.Type)
			pv.Elem().Set(v)
			p = pv.Interface()
		}
		raw, err := json.Marshal(p.(events.DataProvider).EventData())
		if err != nil {
			return nil, err
		}
		return append(b, raw...), nil
	}
	b = append(b, '{')
	for i, c := range m.data {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.key...)
		fv, ok := fieldAt(v, c.field.StructField.Index)
		if !ok {
			// Behind a nil embedded pointer: GORM writes NULL, and
			// leaves the pointer nil when it reads NULLs back.
			b = append(b, "null"...)
			continue
		}
		var err error
		if b, err = c.enc(b, fv); err != nil {
			return nil, fmt.Errorf("telegraphy: encode %s.%s: %w", m.Type.Name(), c.field.Name, err)
		}
	}
	return append(b, '}'), nil
}

// PK returns the primary key of v encoded for meta.pk (a scalar, or an
// object of JSON names for a composite key) and its form in the record
// channel "<name>:<key>" (composite parts joined by ",").
func (m *Model) PK(v reflect.Value) (json.RawMessage, string, error) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	raw, key, err := m.appendPK(nil, nil, v)
	if err != nil {
		return nil, "", err
	}
	return raw, string(key), nil
}

// appendPK appends the primary key of v to b as meta.pk encodes it, and
// its channel form to key.
func (m *Model) appendPK(b, key []byte, v reflect.Value) ([]byte, []byte, error) {
	if len(m.pk) == 1 {
		start := len(b)
		b, err := m.pk[0].enc(b, valueOf(m.pk[0].field, v))
		if err != nil {
			return nil, nil, err
		}
		return b, appendKeyText(key, b[start:]), nil
	}
	b = append(b, '{')
	for i, c := range m.pk {
		if i > 0 {
			b = append(b, ',')
			key = append(key, ',')
		}
		b = append(b, c.key...)
		start := len(b)
		var err error
		if b, err = c.enc(b, valueOf(c.field, v)); err != nil {
			return nil, nil, err
		}
		key = appendKeyText(key, b[start:])
	}
	return append(b, '}'), key, nil
}

// Encoded is one model event, encoded once for all its channels.
type Encoded struct {
	// ID is the event's meta.id.
	ID string
	// RecordChannel is the record channel "<name>:<pk>".
	RecordChannel string
	// Data is the event JSON.
	Data []byte
}

// Encode builds the event of v, a struct of the model's type (or a
// pointer to one), and encodes it in one buffer: the bytes Event.Encode
// gives for Event{Name: m.Name, Meta: meta, Data: Data(v)} with meta's
// ID (a new UUIDv7), Timestamp (now), PK and VerboseName filled in.
func (m *Model) Encode(v reflect.Value, meta events.Meta, now time.Time) (Encoded, error) {
	return m.encode(v, meta, now, true)
}

// EncodeKey is Encode with null data: the event of a row that is gone
// from a channel (leave), which names it only by its key.
func (m *Model) EncodeKey(v reflect.Value, meta events.Meta, now time.Time) (Encoded, error) {
	return m.encode(v, meta, now, false)
}

func (m *Model) encode(v reflect.Value, meta events.Meta, now time.Time, data bool) (Encoded, error) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return Encoded{}, fmt.Errorf("telegraphy: %s event of a nil instance", m.Name)
		}
		v = v.Elem()
	}
	id := wire.NewID(now)
	b := make([]byte, 0, m.sizeHint.Load()+64)
	b = append(b, m.head...)
	b = wire.AppendString(b, meta.EventType)
	b = append(b, m.verbose...)
	b = append(b, `,"timestamp":"`...)
	b = wire.AppendTimestamp(b, now)
	b = append(b, `","id":"`...)
	idStart := len(b)
	b = wire.AppendID(b, &id)
	idEnd := len(b)
	b = append(b, `","pk":`...)
	pkStart := len(b)
	var keyBuf [64]byte
	b, key, err := m.appendPK(b, append(keyBuf[:0], m.recordPfx...), v)
	if err != nil {
		return Encoded{}, fmt.Errorf("telegraphy: %s primary key: %w", m.Name, err)
	}
	if string(b[pkStart:]) == "null" {
		b = b[:pkStart-len(`,"pk":`)]
	}
	if m.version != nil {
		b = appendVersion(b, valueOf(m.version.field, v))
	}
	b = wire.AppendMetaTail(b, meta.Changed, meta.Soft, meta.Count)
	if !data {
		b = append(b, "null"...)
	} else if b, err = m.appendData(b, v); err != nil {
		return Encoded{}, err
	}
	b = append(b, '}')
	if n := int64(len(b)); n > m.sizeHint.Load() {
		m.sizeHint.Store(n)
	}
	return Encoded{ID: string(b[idStart:idEnd]), RecordChannel: string(key), Data: b}, nil
}

// PKValues returns the primary key values of v in schema order, as GORM
// reads them, and whether any is zero.
func (m *Model) PKValues(v reflect.Value) (vals []any, zero bool) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	vals = make([]any, len(m.pk))
	for i, c := range m.pk {
		var z bool
		vals[i], z = c.field.ValueOf(emptyCtx, v)
		zero = zero || z
	}
	return vals, zero
}

// appendKeyText appends an encoded key in its channel form: a JSON string
// without quotes, anything else as encoded.
func appendKeyText(key, raw []byte) []byte {
	if len(raw) == 0 || raw[0] != '"' {
		return append(key, raw...)
	}
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return append(key, raw[1:len(raw)-1]...)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return append(key, s...)
	}
	return append(key, raw...)
}

// encoderFor returns the encoder of a column of type t: a direct one for
// unnamed integers, booleans and strings (which can have no methods),
// appendValue for everything else.
func encoderFor(t reflect.Type) encoder {
	if t.PkgPath() != "" {
		return appendValue
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(b []byte, v reflect.Value) ([]byte, error) { return strconv.AppendInt(b, v.Int(), 10), nil }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return func(b []byte, v reflect.Value) ([]byte, error) { return strconv.AppendUint(b, v.Uint(), 10), nil }
	case reflect.Bool:
		return func(b []byte, v reflect.Value) ([]byte, error) { return strconv.AppendBool(b, v.Bool()), nil }
	case reflect.String:
		return func(b []byte, v reflect.Value) ([]byte, error) { return wire.AppendString(b, v.String()), nil }
	}
	return appendValue
}

// appendValue encodes one column value: json.Marshaler first (times,
// gorm.DeletedAt, decimals), then driver.Valuer (sql.Null*), then
// encoding/json. Nil pointers are null.
func appendValue(b []byte, v reflect.Value) ([]byte, error) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if v.Type().Implements(marshalerType) {
			break
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type().PkgPath() == "" {
			return strconv.AppendInt(b, v.Int(), 10), nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Type().PkgPath() == "" {
			return strconv.AppendUint(b, v.Uint(), 10), nil
		}
	case reflect.Bool:
		if v.Type().PkgPath() == "" {
			return strconv.AppendBool(b, v.Bool()), nil
		}
	case reflect.String:
		if v.Type().PkgPath() == "" {
			return wire.AppendString(b, v.String()), nil
		}
	}
	var x any
	if v.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(v.Type()).Implements(marshalerType) {
		x = v.Addr().Interface()
	} else {
		x = v.Interface()
	}
	if _, ok := x.(json.Marshaler); !ok {
		if vl, ok := x.(driver.Valuer); ok {
			val, err := vl.Value()
			if err != nil {
				return nil, err
			}
			x = val
		}
	}
	raw, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// Registry holds registered models by type and by event name. It is safe
// for concurrent use.
type Registry struct {
	mu     sync.Mutex
	byType sync.Map // reflect.Type -> *Model
	byName map[string]reflect.Type
}

// Add registers m. It fails with events.ErrDuplicate or events.ErrNameTaken.
func (r *Registry) Add(m *Model) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byType.Load(m.Type); ok {
		return fmt.Errorf("%w: %v", events.ErrDuplicate, m.Type)
	}
	if other, ok := r.byName[m.Name]; ok {
		return fmt.Errorf("%w: %q is %v", events.ErrNameTaken, m.Name, other)
	}
	if r.byName == nil {
		r.byName = make(map[string]reflect.Type)
	}
	r.byName[m.Name] = m.Type
	r.byType.Store(m.Type, m)
	return nil
}

// Lookup returns the model registered for the struct type t, or nil.
func (r *Registry) Lookup(t reflect.Type) *Model {
	if v, ok := r.byType.Load(t); ok {
		return v.(*Model)
	}
	return nil
}
