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
	Channels func(model any) []string
	// BulkLimit is how many rows an update or delete by condition may touch
	// and still emit one event per row; beyond it one bulk_update or
	// bulk_delete event is sent instead. Zero value means 1000; a negative
	// value always sends the bulk event.
	BulkLimit int
}

// DefaultBulkLimit is the BulkLimit used when Options.BulkLimit is zero.
const DefaultBulkLimit = 1000
