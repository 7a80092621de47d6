package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

// DamagedError says the state file is not one flowctl can read: truncated,
// with a page or a record that does not decode, or changed outside flowctl.
// Nothing was written to it.
type DamagedError struct {
	Path    string
	Problem string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("state file %s is damaged: %s\n"+
		"flowctl changed nothing. If %s.backup exists, `flowctl state restore --state %s` puts the previous version back.",
		e.Path, e.Problem, e.Path, e.Path)
}

// The on-disk layout of a bbolt (version 2) file, as far as the structural
// check reads it. Integers are in the host's byte order, like bbolt writes
// them.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16 // branch and leaf element headers are both 16 bytes
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	flagBucketLeaf   = 0x01
	noFreelist       = ^uint64(0)
	bucketHeaderSize = 16 // root page id and sequence
	maxTreeDepth     = 64
	minPageSize      = 1024
	maxPageSize      = 1 << 24
)

var ne = binary.NativeEndian

// boltMeta is a decoded meta page.
type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	hwm      uint64 // the high water mark: the first page id never allocated
	txid     uint64
}

// readMeta decodes the meta page starting at off, or says why it is not one.
func readMeta(data []byte, off uint64) (boltMeta, error) {
	const metaSize = 64 // magic .. checksum
	if off+pageHeaderSize+metaSize > uint64(len(data)) {
		return boltMeta{}, errors.New("cut short")
	}
	m := data[off+pageHeaderSize : off+pageHeaderSize+metaSize]
	if ne.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("no bbolt magic number")
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, not %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// chooseMeta finds the meta page bbolt will use: of the two copies, the
// valid one with the higher transaction id. The page size is the first
// copy's, or, when it is unreadable, found where bbolt looks for the second.
func chooseMeta(data []byte) (boltMeta, error) {
	m0, err0 := readMeta(data, 0)
	pageSize := m0.pageSize
	if err0 != nil {
		for i := 0; i <= 14; i++ {
			pos := uint64(1024) << i
			if pos >= uint64(len(data)) {
				break
			}
			if m, err := readMeta(data, pos); err == nil {
				pageSize = m.pageSize
				break
			}
		}
	}
	if pageSize < minPageSize || pageSize > maxPageSize || pageSize&(pageSize-1) != 0 {
		if err0 != nil {
			return boltMeta{}, fmt.Errorf("no readable meta page (the first: %v)", err0)
		}
		return boltMeta{}, fmt.Errorf("meta page: page size %d is not a power of two from 1 KiB to 16 MiB", pageSize)
	}
	m1, err1 := readMeta(data, pageSize)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return boltMeta{}, fmt.Errorf("both meta pages are unreadable (the first: %v; the second: %v)", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil:
		m = m0
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	if m.pageSize != pageSize {
		return boltMeta{}, fmt.Errorf("the meta pages disagree on the page size (%d, %d)", pageSize, m.pageSize)
	}
	return m, nil
}

// checker walks a bbolt file's pages as bbolt would read them, and checks
// every offset, count and page id before it is used: a file that passes
// cannot make bbolt read outside the file or its pages.
type checker struct {
	data     []byte
	meta     boltMeta
	pages    uint64          // whole pages in the file
	seen     map[uint64]bool // pages reachable from the root, with overflow
	freeList map[uint64]bool
}

// verifyBolt checks the structure of the bbolt file in data.
func verifyBolt(data []byte) error {
	m, err := chooseMeta(data)
	if err != nil {
		return err
	}
	c := &checker{data: data, meta: m, pages: uint64(len(data)) / m.pageSize, seen: map[uint64]bool{}, freeList: map[uint64]bool{}}
	if m.hwm < 3 || m.hwm > c.pages {
		if m.hwm > c.pages {
			return fmt.Errorf("the file is truncated: it is %d bytes, its pages reach %d bytes", len(data), m.hwm*m.pageSize)
		}
		return fmt.Errorf("meta page: high water mark %d is below 3", m.hwm)
	}
	if err := c.readFreelist(); err != nil {
		return err
	}
	if err := c.tree(m.root, 0, nil, nil, "root bucket"); err != nil {
		return err
	}
	for id := range c.seen {
		if c.freeList[id] {
			return fmt.Errorf("page %d is in use and also listed as free", id)
		}
	}
	return nil
}

// page returns the bytes of page id and its overflow pages, after checking
// that they lie within the file and below the high water mark.
func (c *checker) page(id uint64, what string) ([]byte, error) {
	if id < 2 || id >= c.meta.hwm {
		return nil, fmt.Errorf("%s: page id %d is outside the file's pages 2..%d", what, id, c.meta.hwm-1)
	}
	off := id * c.meta.pageSize
	hdr := c.data[off : off+pageHeaderSize]
	if got := ne.Uint64(hdr); got != id {
		return nil, fmt.Errorf("%s: page %d says it is page %d", what, id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= c.meta.hwm {
		return nil, fmt.Errorf("%s: page %d overflows past the last page (%d more pages)", what, id, overflow)
	}
	return c.data[off : off+(overflow+1)*c.meta.pageSize], nil
}

// readFreelist checks the freelist page and records the free page ids.
func (c *checker) readFreelist() error {
	if c.meta.freelist == noFreelist {
		return nil
	}
	p, err := c.page(c.meta.freelist, "freelist")
	if err != nil {
		return err
	}
	if flags := ne.Uint16(p[8:]); flags != flagFreelist {
		return fmt.Errorf("freelist: page %d is not a freelist page (flags %#x)", c.meta.freelist, flags)
	}
	start, count := uint64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return errors.New("freelist: cut short")
		}
		count = ne.Uint64(p[pageHeaderSize:])
		start += 8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist: %d ids do not fit its %d bytes", count, len(p))
	}
	for i := range count {
		id := ne.Uint64(p[start+8*i:])
		if id < 2 || id >= c.meta.hwm {
			return fmt.Errorf("freelist: free page id %d is outside the file's pages 2..%d", id, c.meta.hwm-1)
		}
		if c.freeList[id] {
			return fmt.Errorf("freelist: page %d is listed twice", id)
		}
		c.freeList[id] = true
	}
	for i := uint64(0); i*c.meta.pageSize < uint64(len(p)); i++ {
		if c.freeList[c.meta.freelist+i] {
			return fmt.Errorf("freelist: the freelist's own page %d is listed as free", c.meta.freelist+i)
		}
	}
	return nil
}

// tree checks the bucket tree rooted at page id; every key must lie in
// [lo, hi) (nil: unbounded).
func (c *checker) tree(id uint64, depth int, lo, hi []byte, what string) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%s: the tree is deeper than %d pages", what, maxTreeDepth)
	}
	p, err := c.page(id, what)
	if err != nil {
		return err
	}
	for i := uint64(0); i*c.meta.pageSize < uint64(len(p)); i++ {
		if c.seen[id+i] {
			return fmt.Errorf("%s: page %d is reached twice", what, id+i)
		}
		c.seen[id+i] = true
	}
	return c.node(p, id, depth, lo, hi, what)
}

// node checks one branch or leaf page (p, with its overflow; id 0 for an
// inline bucket's page).
func (c *checker) node(p []byte, id uint64, depth int, lo, hi []byte, what string) error {
	if len(p) < pageHeaderSize {
		return fmt.Errorf("%s: inline page cut short", what)
	}
	flags, count := ne.Uint16(p[8:]), uint64(ne.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return fmt.Errorf("%s: page %d is neither a branch nor a leaf (flags %#x)", what, id, flags)
	}
	if flags == flagBranch && count == 0 {
		return fmt.Errorf("%s: branch page %d is empty", what, id)
	}
	if pageHeaderSize+count*elementSize > uint64(len(p)) {
		return fmt.Errorf("%s: page %d: %d elements do not fit its %d bytes", what, id, count, len(p))
	}
	keys := make([][]byte, count)
	for i := range count {
		key, val, bucket, err := element(p, flags, i)
		if err != nil {
			return fmt.Errorf("%s: page %d %w", what, id, err)
		}
		keys[i] = key
		if (i > 0 && bytes.Compare(keys[i-1], key) >= 0) || (lo != nil && bytes.Compare(key, lo) < 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
			return fmt.Errorf("%s: page %d: key %d is out of order", what, id, i)
		}
		if bucket {
			if err := c.bucket(val, fmt.Sprintf("bucket %q", key)); err != nil {
				return err
			}
		}
	}
	if flags == flagLeaf {
		return nil
	}
	return c.children(p, depth, keys, lo, hi, what)
}

// children checks the subtrees of a branch page p whose keys are keys: the
// subtree of key i holds the keys from key i to key i+1 (the first from
// lo, the last up to hi).
func (c *checker) children(p []byte, depth int, keys [][]byte, lo, hi []byte, what string) error {
	for i := range keys {
		e := p[pageHeaderSize+i*elementSize:]
		low, next := keys[i], hi
		if i == 0 {
			low = lo // the first key of a branch need not be its subtree's smallest
		}
		if i+1 < len(keys) {
			next = keys[i+1]
		}
		if err := c.tree(ne.Uint64(e[8:]), depth+1, low, next, what); err != nil {
			return err
		}
	}
	return nil
}

// element reads element i of a branch or leaf page p: its key, its value
// (leaf only), and whether the value is a nested bucket.
func element(p []byte, flags uint16, i uint64) (key, val []byte, bucket bool, err error) {
	el := pageHeaderSize + i*elementSize
	e := p[el : el+elementSize]
	var pos, ksize, vsize uint64
	if flags == flagBranch {
		pos, ksize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
	} else {
		pos, ksize, vsize = uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		f := ne.Uint32(e[0:])
		if f&^flagBucketLeaf != 0 {
			return nil, nil, false, fmt.Errorf("element %d has unknown flags %#x", i, f)
		}
		bucket = f&flagBucketLeaf != 0
	}
	if el+pos+ksize+vsize > uint64(len(p)) {
		return nil, nil, false, fmt.Errorf("element %d lies past the page's end", i)
	}
	k := el + pos
	return p[k : k+ksize], p[k+ksize : k+ksize+vsize], bucket, nil
}

// bucket checks a nested bucket from its value: a header, then either a
// root page id or (root 0) the bucket's own inline leaf page.
func (c *checker) bucket(v []byte, what string) error {
	if len(v) < bucketHeaderSize {
		return fmt.Errorf("%s: its header is cut short (%d bytes)", what, len(v))
	}
	if root := ne.Uint64(v); root != 0 {
		return c.tree(root, 0, nil, nil, what)
	}
	inline := v[bucketHeaderSize:]
	if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != flagLeaf {
		return fmt.Errorf("%s: its inline page is not a leaf", what)
	}
	return c.node(inline, 0, 0, nil, nil, what)
}
