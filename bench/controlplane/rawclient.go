// The raw heartbeat client (-client raw).
//
// On a small machine the load generator shares the CPUs with the control
// plane, and grpc-go's client spends about as much CPU per call as the
// server does (stream set-up, its writer goroutine, BDP pings, contexts and
// interceptors), so with it the maximum-throughput figure measures the two
// together. rawConn is a minimal unary gRPC client over HTTP/2 (h2c, prior
// knowledge) for the heartbeat phase only: one TCP connection per component,
// one call at a time, request and response on a reused buffer, HEADERS and
// DATA in one write, a whole response usually in one read. The requests are
// byte-for-byte standard gRPC, so it works against any gRPC server of either
// protocol, and it sends what grpc-go's client sends besides: on each
// response's DATA, when none is outstanding, a BDP ping with a connection
// WINDOW_UPDATE, which the server reads and answers. The server therefore
// does the same work per heartbeat as with SDK components (grpc-go
// clients). What it leaves out is what a heartbeat does not need:
// concurrent streams, compression, reconnection (a connection that fails
// stays failed).

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawWindow is the flow-control window (connection and each stream) the raw
// client gives the server: responses never wait for a WINDOW_UPDATE.
const rawWindow = 1 << 30

// rawConn is one component's connection for the raw client. Calls are
// serialised by mu (several -rate 0 workers may share a component).
type rawConn struct {
	mu         sync.Mutex
	conn       net.Conn
	fr         *http2.Framer // reads through a bufio.Reader, writes to wbuf
	wbuf       bytes.Buffer  // frames to send, flushed with one Write
	henc       *hpack.Encoder
	hbuf       bytes.Buffer
	headers    []hpack.HeaderField // of each request; [2] is :path
	timeout    time.Duration       // of each call
	nextStream uint32
	sendWindow int64  // connection-level window for our DATA
	maxFrame   int    // server's SETTINGS_MAX_FRAME_SIZE
	unacked    uint32 // response DATA bytes not yet given back by WINDOW_UPDATE
	msg        []byte // the gRPC message being sent, reused
	goAway     error  // the server sent GOAWAY
	lastStream uint32 // of the GOAWAY: later streams were not processed
	err        error  // sticky: the connection is unusable
	pingOut    bool   // a BDP ping awaits its ack
}

// bdpPing is the payload of grpc-go's bandwidth-estimation ping, which its
// client sends when it receives DATA and no such ping is outstanding.
var bdpPing = [8]byte{2, 4, 16, 16, 9, 14, 7, 7}

// dialRaw opens a connection to addr and does the HTTP/2 handshake; md is
// sent with every call (the component's token).
func dialRaw(addr string, md metadata.MD, timeout time.Duration) (*rawConn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &rawConn{conn: conn, timeout: timeout, nextStream: 1, sendWindow: 65535, maxFrame: 16384}
	c.fr = http2.NewFramer(&c.wbuf, bufio.NewReaderSize(conn, 16<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.headers = []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path"}, // per call
		{Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
		{Name: "user-agent", Value: "flowctl-bench-raw"},
		{Name: "grpc-timeout"}, // per call, as grpc-go sends the caller's deadline
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		for _, v := range md[k] {
			c.headers = append(c.headers, hpack.HeaderField{Name: k, Value: v})
		}
	}

	conn.SetDeadline(time.Now().Add(timeout))
	c.wbuf.WriteString(http2.ClientPreface)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: rawWindow})
	c.fr.WriteWindowUpdate(0, rawWindow-65535)
	if err := c.flush(); err != nil {
		conn.Close()
		return nil, err
	}
	// The server's preface is a SETTINGS frame.
	f, err := c.fr.ReadFrame()
	if err == nil {
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			err = fmt.Errorf("server preface: %v, want SETTINGS", f.Header())
		} else {
			err = c.handle(f)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raw client: HTTP/2 handshake with %s: %w", addr, err)
	}
	return c, nil
}

func (c *rawConn) Close() error { return c.conn.Close() }

// call makes the unary call path (/<service>/<Method>) with req, by
// deadline or c.timeout from now, whichever is sooner; it succeeds if the
// server answers grpc-status 0, and returns a grpc status error otherwise.
// The response message is discarded.
func (c *rawConn) call(path string, req proto.Message, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if d := time.Now().Add(c.timeout); d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return c.fail(err)
	}
	if c.nextStream > 1<<31-1 {
		return c.fail(errors.New("raw client: stream ids exhausted"))
	}
	id := c.nextStream
	c.nextStream += 2

	// Length-prefixed message: compressed flag 0, big-endian length.
	msg, err := proto.MarshalOptions{}.MarshalAppend(append(c.msg[:0], 0, 0, 0, 0, 0), req)
	if err != nil {
		return err
	}
	c.msg = msg
	binary.BigEndian.PutUint32(msg[1:5], uint32(len(msg)-5))
	for c.sendWindow < int64(len(msg)) { // wait for the server's WINDOW_UPDATE
		if err := c.readAndHandle(); err != nil {
			return c.fail(err)
		}
	}

	c.hbuf.Reset()
	c.headers[2].Value = path
	c.headers[7].Value = grpcTimeout(time.Until(deadline))
	for _, h := range c.headers {
		c.henc.WriteField(h)
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true})
	for rest := msg; ; {
		n := min(len(rest), c.maxFrame)
		c.fr.WriteData(id, n == len(rest), rest[:n])
		if rest = rest[n:]; len(rest) == 0 {
			break
		}
	}
	c.sendWindow -= int64(len(msg))
	if err := c.flush(); err != nil {
		return c.fail(err)
	}

	// Read until the stream ends.
	grpcStatus, grpcMessage, httpStatus := "", "", ""
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.fail(err)
		}
		if f.Header().StreamID != id {
			if err := c.handle(f); err != nil {
				return c.fail(err)
			}
			if c.goAway != nil && id > c.lastStream {
				return c.fail(c.goAway) // our call was not processed
			}
			continue
		}
		var ended bool
		switch f := f.(type) {
		case *http2.MetaHeadersFrame: // response headers, or trailers
			ended = f.StreamEnded()
			for _, h := range f.Fields {
				switch h.Name {
				case ":status":
					httpStatus = h.Value
				case "grpc-status":
					grpcStatus = h.Value
				case "grpc-message":
					grpcMessage = h.Value
				}
			}
		case *http2.DataFrame:
			ended = f.StreamEnded()
			c.unacked += f.Length // the message is ignored, counted for flow control
			if f.Length > 0 && !c.pingOut {
				// As grpc-go's client: hand the window back, then ping.
				c.fr.WriteWindowUpdate(0, c.unacked)
				c.unacked = 0
				c.fr.WritePing(false, bdpPing)
				c.pingOut = true
				if err := c.flush(); err != nil {
					return c.fail(err)
				}
			}
		case *http2.RSTStreamFrame:
			return c.done(fmt.Errorf("raw client: %s: stream reset by the server (%v)", path, f.ErrCode))
		case *http2.WindowUpdateFrame:
			continue
		default:
			return c.fail(fmt.Errorf("raw client: unexpected %v on stream %d", f.Header().Type, id))
		}
		if !ended {
			continue
		}
		switch {
		case httpStatus != "200":
			return c.done(fmt.Errorf("raw client: %s: HTTP status %q", path, httpStatus))
		case grpcStatus == "0":
			return c.done(nil)
		case grpcStatus == "":
			return c.done(fmt.Errorf("raw client: %s: stream ended without grpc-status", path))
		}
		code, err := strconv.ParseUint(grpcStatus, 10, 32)
		if err != nil {
			return c.done(fmt.Errorf("raw client: %s: grpc-status %q", path, grpcStatus))
		}
		if m, err := url.PathUnescape(grpcMessage); err == nil {
			grpcMessage = m
		}
		return c.done(status.Error(codes.Code(code), grpcMessage))
	}
}

// done ends a call whose stream ended: give the response bytes back to the
// server's window when half of it is used (sent with the next request), and
// fail later calls if the server is going away.
func (c *rawConn) done(err error) error {
	if c.unacked >= rawWindow/2 {
		c.fr.WriteWindowUpdate(0, c.unacked)
		c.unacked = 0
	}
	if c.goAway != nil {
		c.fail(c.goAway)
	}
	return err
}

// handle processes a frame of the connection, not of the current call.
func (c *rawConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingHeaderTableSize:
				c.henc.SetMaxDynamicTableSizeLimit(s.Val)
			case http2.SettingMaxFrameSize:
				c.maxFrame = int(s.Val)
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.fr.WriteSettingsAck()
		return c.flush()
	case *http2.PingFrame:
		if f.IsAck() {
			if f.Data == bdpPing {
				c.pingOut = false
			}
			return nil
		}
		c.fr.WritePing(true, f.Data)
		return c.flush()
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendWindow += int64(f.Increment)
		}
	case *http2.GoAwayFrame:
		c.goAway = fmt.Errorf("raw client: server sent GOAWAY (%v, last stream %d, %q): connection closed",
			f.ErrCode, f.LastStreamID, f.DebugData())
		c.lastStream = f.LastStreamID
	case *http2.DataFrame: // of an earlier stream (none expected): still counts
		c.unacked += f.Length
	}
	return nil
}

// readAndHandle reads and handles one connection frame between calls.
func (c *rawConn) readAndHandle() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	if err := c.handle(f); err != nil {
		return err
	}
	if c.goAway != nil {
		return c.goAway
	}
	return nil
}

// fail marks the connection unusable and closes it.
func (c *rawConn) fail(err error) error {
	if c.err == nil {
		c.err = err
		c.conn.Close()
	}
	return err
}

func (c *rawConn) flush() error {
	_, err := c.conn.Write(c.wbuf.Bytes())
	c.wbuf.Reset()
	return err
}

// grpcTimeout encodes d as the grpc-timeout header does: at most eight
// digits and a unit.
func grpcTimeout(d time.Duration) string {
	const most = 1e8 - 1
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := (d + u.d - 1) / u.d; v <= most {
			return strconv.FormatInt(int64(max(v, 0)), 10) + u.unit
		}
	}
	return strconv.FormatInt(int64((d+time.Hour-1)/time.Hour), 10) + "H"
}
