package events

import "errors"

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
	// ErrVersionType is returned when Options.Version names a field that
	// is not an integer, a time.Time or a driver.Valuer. The error names
	// the field.
	ErrVersionType = errors.New("telegraphy: version field is not an integer or a time.Time")
	// ErrChannelFields is returned when Options.ChannelFields is set
	// without Options.Channels.
	ErrChannelFields = errors.New("telegraphy: Options.ChannelFields given without Options.Channels")
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
