// Package doctest holds the docs test: it runs the shell blocks of
// README.md, docs/quickstart.md and examples/README.md, in that order, on a
// copy of the checkout, and checks the output the documents show, so that
// the documents cannot drift from what flowctl does.
//
// A fenced block tagged sh, bash, shell or console is run: each block by
// bash with -e and pipefail, from the directory and with the exported
// variables the previous block of the same document left (as in one
// terminal). An HTML comment right before a block changes that:
//
//	<!-- doctest: skip REASON -->   never run (the reason is required)
//	<!-- doctest: docker -->        needs a Docker engine: skipped without one
//	<!-- doctest: background -->    started and left running (another terminal);
//	                                interrupted with SIGINT, as by Ctrl-C, at
//	                                <!-- doctest: interrupt --> or at the
//	                                document's end, after which nothing it
//	                                started may still run
//	<!-- doctest: retry -->         re-run until it succeeds and its output
//	                                matches (a state reached in time)
//	<!-- doctest: output -->        (before an untagged block) the output of
//	                                the block before it
//
// An output block matches when its lines appear in that order among the
// lines printed; numbers, durations and hexadecimal ids match any such word, runs
// of spaces any run of spaces, "..." anything, and a line "..." any lines.
// Keys combine: <!-- doctest: docker, background -->. An hcl or yaml block
// holding a pipeline is checked with flowctl validate (a block before it
// must have built bin/flowctl).
package doctest
