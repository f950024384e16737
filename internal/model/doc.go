// Package model resolves a registered model type against its
// events.Options with GORM's schema parser: which columns are sent under
// which JSON names, how the primary key, the version and the data are
// encoded (the rules are in the events package documentation). It is
// apart from events so that events, and the hub, brokers and token
// handler that use its types, import nothing from GORM.
//
// # Concurrency
//
// A Model is immutable once built; Registry and Model methods are safe for
// concurrent use.
package model
