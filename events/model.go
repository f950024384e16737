package events

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm/schema"
)

// Registration errors. They carry the "telegraphy: " prefix because users
// meet them through telegraphy.Plugin.Register, which re-exports them.
var (
	// ErrNotStruct is returned when a model is not a struct, a pointer to
	// one, or a type GORM can parse.
	ErrNotStruct = errors.New("telegraphy: model is not a struct")
	// ErrUnknownField is returned when Fields or Exclude names a field the
	// model does not have. The error names the field.
	ErrUnknownField = errors.New("telegraphy: unknown field")
	// ErrDuplicate is returned when a model type is registered twice.
	ErrDuplicate = errors.New("telegraphy: model already registered")
	// ErrNameTaken is returned when two model types would share one event
	// name.
	ErrNameTaken = errors.New("telegraphy: event name already used by another model")
	// ErrNoPrimaryKey is returned for a model without a primary key: its
	// events could not name a record.
	ErrNoPrimaryKey = errors.New("telegraphy: model has no primary key")
)

// Eventer is implemented by models that register themselves: the first
// time such a model is written through a DB with the plugin, it is
// registered with the options this method returns.
type Eventer interface {
	TelegraphyEvents() Options
}

// DataProvider is implemented by models that supply their own event data.
// EventData's result is encoded with encoding/json in place of the
// model's columns.
type DataProvider interface {
	EventData() any
}

var (
	eventerType      = reflect.TypeFor[Eventer]()
	dataProviderType = reflect.TypeFor[DataProvider]()
	marshalerType    = reflect.TypeFor[json.Marshaler]()
	emptyCtx         = context.Background()
)

// IsEventer reports whether the struct type t (or a pointer to it)
// implements Eventer.
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
	Options Options

	schema   *schema.Schema
	data     []*column // the columns sent in data, in schema order
	pk       []*column
	byDBName map[string]*column
	provider bool
}

type column struct {
	field *schema.Field
	json  string // JSON name
	key   []byte // `"json":`
	sent  bool   // not hidden by `json:"-"`
	data  bool   // sent in data under the model's Fields/Exclude
}

var parseCache sync.Map

// NewModel resolves opts against model, a struct value or pointer. It
// fails with ErrNotStruct, ErrNoPrimaryKey or ErrUnknownField.
func NewModel(model any, opts Options) (*Model, error) {
	t := reflect.TypeOf(model)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v", ErrNotStruct, reflect.TypeOf(model))
	}
	s, err := schema.Parse(reflect.New(t).Interface(), &parseCache, schema.NamingStrategy{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrNotStruct, t, err)
	}
	if len(s.PrimaryFields) == 0 {
		return nil, fmt.Errorf("%w: %v", ErrNoPrimaryKey, t)
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
	byName := make(map[string]*column)
	var cols []*column
	for _, dbName := range s.DBNames {
		f := s.FieldsByDBName[dbName]
		c := &column{field: f, json: jsonName(f)}
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
				return nil, fmt.Errorf("%w %q in %v", ErrUnknownField, n, t)
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
	return m, nil
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
	if m.provider {
		var p any
		if v.CanAddr() {
			p = v.Addr().Interface()
		} else {
			pv := reflect.New(m.Type)
			pv.Elem().Set(v)
			p = pv.Interface()
		}
		return json.Marshal(p.(DataProvider).EventData())
	}
	var buf bytes.Buffer
	buf.Grow(16 * (len(m.data) + 1))
	buf.WriteByte('{')
	for i, c := range m.data {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.key)
		if err := appendValue(&buf, c.field.ReflectValueOf(emptyCtx, v)); err != nil {
			return nil, fmt.Errorf("telegraphy: encode %s.%s: %w", m.Type.Name(), c.field.Name, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// PK returns the primary key of v encoded for meta.pk (a scalar, or an
// object of JSON names for a composite key) and its form in the record
// channel "<name>:<key>" (composite parts joined by ",").
func (m *Model) PK(v reflect.Value) (json.RawMessage, string, error) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if len(m.pk) == 1 {
		var buf bytes.Buffer
		if err := appendValue(&buf, m.pk[0].field.ReflectValueOf(emptyCtx, v)); err != nil {
			return nil, "", err
		}
		raw := buf.Bytes()
		return raw, keyText(raw), nil
	}
	var buf bytes.Buffer
	var key strings.Builder
	buf.WriteByte('{')
	for i, c := range m.pk {
		if i > 0 {
			buf.WriteByte(',')
			key.WriteByte(',')
		}
		buf.Write(c.key)
		start := buf.Len()
		if err := appendValue(&buf, c.field.ReflectValueOf(emptyCtx, v)); err != nil {
			return nil, "", err
		}
		key.WriteString(keyText(buf.Bytes()[start:]))
	}
	buf.WriteByte('}')
	return buf.Bytes(), key.String(), nil
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

// keyText turns an encoded key into its channel form: a JSON string
// without quotes, anything else as encoded.
func keyText(raw []byte) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// appendValue encodes one column value: json.Marshaler first (times,
// gorm.DeletedAt, decimals), then driver.Valuer (sql.Null*), then
// encoding/json. Nil pointers are null.
func appendValue(buf *bytes.Buffer, v reflect.Value) error {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		if v.Type().Implements(marshalerType) {
			break
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type().PkgPath() == "" {
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), v.Int(), 10))
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Type().PkgPath() == "" {
			buf.Write(strconv.AppendUint(buf.AvailableBuffer(), v.Uint(), 10))
			return nil
		}
	case reflect.Bool:
		if v.Type().PkgPath() == "" {
			buf.Write(strconv.AppendBool(buf.AvailableBuffer(), v.Bool()))
			return nil
		}
	case reflect.String:
		if v.Type().PkgPath() == "" {
			b, err := json.Marshal(v.String())
			if err != nil {
				return err
			}
			buf.Write(b)
			return nil
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
				return err
			}
			x = val
		}
	}
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// Registry holds registered models by type and by event name. It is safe
// for concurrent use.
type Registry struct {
	mu     sync.Mutex
	byType sync.Map // reflect.Type -> *Model
	byName map[string]reflect.Type
}

// Add registers m. It fails with ErrDuplicate or ErrNameTaken.
func (r *Registry) Add(m *Model) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byType.Load(m.Type); ok {
		return fmt.Errorf("%w: %v", ErrDuplicate, m.Type)
	}
	if other, ok := r.byName[m.Name]; ok {
		return fmt.Errorf("%w: %q is %v", ErrNameTaken, m.Name, other)
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
