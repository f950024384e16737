// Run by TestNodeTwoProcesses (go test ./jsclient): app process A (the Go
// test) and app process B (a child process) write one card through their
// own plugins to one SQLite database and publish through one Redis; the
// hub reads that Redis.
import { staleCase } from "./stale.mjs";

staleCase("two app processes publishing out of order: the collection keeps the newest, as the database does");
