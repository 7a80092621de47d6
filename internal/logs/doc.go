// Package logs merges the logs of a pipeline's components, whatever runs
// them, into one stream ordered by time: what `flowctl logs` prints.
//
// Executors give each instance's log through Reader, the log method every
// provider has; with Timestamps each line reads "<RFC 3339 time> <stream>
// <text>", which is what this package parses and orders by. Which
// instances exist, and which history events started them, comes from the
// state file through an Inventory.
//
// Run has two halves. The backlog (the lines already written, limited by
// Since and Tail) is a k-way merge of every component's log: each log keeps
// its own order, and the logs interleave by time. Following (Follow) then
// re-reads state every Relist, starts reading components that appear,
// moves to an instance's new handle when its log ends (a replaced
// container), and notices new instances, for which it inserts a marker
// line ("--- restarted (exited code=2), attempt 3 ---") at the moment the
// instance started. Live lines pass through a short hold-back buffer so
// that logs that reach us at different speeds still come out in time
// order, and a marker comes out before the first line of its instance.
//
// A component's log outlives its runs (the process executor's file, the
// docker executor's archive of removed containers' last lines), so the
// end of a run ("--- destroyed ---") and the start of the next ("---
// created by apply ---") are marked too; the first creation, which
// separates nothing, is not.
package logs
