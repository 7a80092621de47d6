// Package components holds example flowctl components built on
// pkg/component, one main package each:
//
//   - counter-source: sequence-numbered JSON events at a set rate, up to a
//     set count, resuming after a saved position;
//   - transform-processor: rewrites fields of JSON events;
//   - file-sink: appends events to an NDJSON file, each event id once.
//
// `make` builds them into bin/, `make images` into FROM scratch images;
// each main's doc comment lists its environment. This package itself only
// holds the test that runs the three binaries together.
package components
