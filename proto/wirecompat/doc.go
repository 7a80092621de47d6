// Package wirecompat holds no code: its tests pin the wire form of the
// generated control-plane and data-plane messages (field numbers, types,
// fully-qualified service and method names) against hand-built encodings,
// so a renumbered field in proto/ fails CI instead of breaking components
// in the wild. It lives outside proto/gen because `make proto` rewrites
// that folder.
package wirecompat
