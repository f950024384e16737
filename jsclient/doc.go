// Package jsclient holds the browser client of Telegraphy, telegraphy.js, and
// the html/template helper that renders it into a page.
//
// telegraphy.js is one ES module with no dependencies and no build step. It
// is embedded in the Go binary; Handler serves it (the hub mounts it at
// <mount>/telegraphy.js) with a strong ETag so browsers cache and revalidate
// it. telegraphy.d.ts types it for TypeScript users. Besides subscriptions
// it keeps live collections (t.collection): the rows a page rendered, kept
// up to date from the channel's events, refetched when events are lost,
// with late events older than a row's meta.version dropped (README.md).
//
// FuncMap returns the template function that writes the module script into
// a page together with its configuration: a fresh single-use token for the
// request's user and, for every channel the page subscribes to, the
// channel's current position. The client subscribes from that position, so
// an event committed between rendering the page and subscribing still
// reaches it.
//
// # Concurrency
//
// Handler and the functions of FuncMap are safe for concurrent use.
package jsclient
