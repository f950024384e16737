package events

// Operation is a set of write operations that produce events.
type Operation uint8

// The operations a model can emit events for. Combine them with |.
const (
	OpCreate Operation = 1 << iota
	OpUpdate
	OpDelete

	// OpNone emits no events for the model. Options.Operations == 0 means
	// the default (OpAll); use OpNone to switch a model's automatic events off.
	OpNone Operation = 1 << 7
	// OpAll is the default: create, update and delete.
	OpAll = OpCreate | OpUpdate | OpDelete
)

// Has reports whether o includes op.
func (o Operation) Has(op Operation) bool {
	if o == 0 {
		o = OpAll
	}
	return o&op != 0
}

// Options say how a registered model turns into events. The zero value is
// valid and means: every column, every operation, the default name.
type Options struct {
	// Name is the event name and model channel. Zero value means
	// "<package>.<Type>" of the model, e.g. "shop.Order".
	Name string
	// VerboseName is a human-friendly name sent in meta.verbose_name.
	// Zero value omits it.
	VerboseName string
	// Fields lists the Go struct fields (or their JSON names) sent in data.
	// Zero value means every column. When set, Exclude is ignored.
	Fields []string
	// Exclude lists Go struct fields (or their JSON names) never sent.
	Exclude []string
	// Operations selects which writes emit events. Zero value means OpAll;
	// OpNone means none.
	Operations Operation
	// Channels returns extra channels for an instance, beyond the model
	// channel "<name>" and the record channel "<name>:<pk>". It receives a
	// pointer to the model struct. Zero value adds none.
	//
	// An update that changes what Channels returns for a row moves the row
	// between channels: the channels it joined get an "enter" event with
	// the whole row, those it left a "leave" event with its key, those it
	// stayed in an "update". To tell them apart the plugin reads, before
	// each update (and soft delete) of a model with Channels, the rows the
	// statement is about to change (see ChannelFields).
	Channels func(model any) []string
	// ChannelFields lists the fields (Go name, JSON name or column name)
	// that Channels reads. The read before an update then selects only
	// those columns (with the primary key, and the soft-delete column of a
	// model that has one); the instance Channels receives for it has every
	// other field at its zero value. Zero value reads whole rows. Register
	// fails with ErrUnknownField naming a field the model does not have,
	// and with ErrChannelFields when Channels is nil.
	ChannelFields []string
	// BulkLimit is how many rows an update or delete by condition may touch
	// and still emit one event per row; beyond it one bulk_update or
	// bulk_delete event is sent instead. Zero value means 1000; a negative
	// value always sends the bulk event.
	BulkLimit int
	// Version names the field (Go name or JSON name) that holds the row's
	// version: an integer the application increments on each write, or a
	// time.Time such as UpdatedAt (pointers to either, and types
	// implementing driver.Valuer whose value is an int64 or a time.Time,
	// are accepted too). Each event of a row then carries it as
	// meta.version, an integer or a UTC timestamp with nine fractional
	// digits, so a client can drop an event older than the row it holds,
	// whatever order the events of several processes arrive in. The
	// version must grow with every write of a key, across a delete and a
	// re-create of the same key too. A time has the precision the
	// database keeps (updates are read back): two writes of one row
	// within it (a millisecond in MySQL's default datetime(3)) carry
	// equal versions, and a client applies both in the order they came;
	// an integer version has no such limit. Zero value sends no
	// meta.version.
	// Register fails with ErrUnknownField when the field does not exist,
	// and with ErrVersionType when it is of another type.
	Version string
}

// DefaultBulkLimit is the BulkLimit used when Options.BulkLimit is zero.
const DefaultBulkLimit = 1000
