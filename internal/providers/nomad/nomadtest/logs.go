package nomadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Log streaming, as the client's /v1/client/fs/logs/:alloc_id does it.
const (
	frameSize     = 64 << 10
	heartbeatIdle = time.Second
	followPoll    = 25 * time.Millisecond
)

// logs streams one log of an allocation's task as frames: each a JSON
// object with the data (base64), the file it came from and the offset in
// that file where the data ends; an empty object is a heartbeat. With
// plain=true the bytes are sent as they are. A followed log ends once the
// allocation is over and everything was sent.
func (e *Emulator) logs(w http.ResponseWriter, r *http.Request, allocID string) {
	q := r.URL.Query()
	task, stream, origin := q.Get("task"), q.Get("type"), q.Get("origin")
	follow, _ := strconv.ParseBool(q.Get("follow"))
	plain, _ := strconv.ParseBool(q.Get("plain"))
	offset, err := strconv.ParseInt(q.Get("offset"), 10, 64)
	if q.Get("offset") == "" {
		offset, err = 0, nil
	}
	switch {
	case err != nil || offset < 0:
		httpError(w, http.StatusBadRequest, "invalid offset %q", q.Get("offset"))
		return
	case task == "":
		httpError(w, http.StatusBadRequest, "must provide task name")
		return
	case stream != "stdout" && stream != "stderr":
		httpError(w, http.StatusBadRequest, "logs type must be set to either stdout or stderr, got %q", stream)
		return
	case origin != "" && origin != "start" && origin != "end":
		httpError(w, http.StatusBadRequest, "origin must be start or end")
		return
	}
	e.mu.Lock()
	e.advance(time.Now())
	a := e.allocs[allocID]
	var size int64
	if a != nil {
		size = int64(len(a.logs[stream]))
	}
	e.mu.Unlock()
	switch {
	case a == nil:
		httpError(w, http.StatusNotFound, "Unknown allocation %q", allocID)
		return
	case a.task != task:
		httpError(w, http.StatusBadRequest, "unknown task name %q", task)
		return
	}
	pos := min(offset, size)
	if origin == "end" {
		pos = max(0, size-offset)
	}
	file := fmt.Sprintf("alloc/logs/%s.%s.0", task, stream)
	if plain {
		w.Header().Set("Content-Type", "text/plain")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(f *api.StreamFrame) bool {
		var err error
		if plain {
			_, err = w.Write(f.Data)
		} else {
			err = enc.Encode(f)
		}
		if flusher != nil {
			flusher.Flush()
		}
		return err == nil
	}
	idle := time.Now()
	for {
		e.mu.Lock()
		e.advance(time.Now())
		data := a.logs[stream]
		var chunk []byte
		if int64(len(data)) > pos {
			chunk = append([]byte(nil), data[pos:min(int64(len(data)), pos+frameSize)]...)
		}
		over := terminal(a.client)
		e.mu.Unlock()
		if len(chunk) > 0 {
			pos += int64(len(chunk))
			if !send(&api.StreamFrame{Data: chunk, File: file, Offset: pos}) {
				return
			}
			idle = time.Now()
			continue
		}
		if !follow || over {
			return
		}
		if time.Since(idle) >= heartbeatIdle && !plain {
			if !send(&api.StreamFrame{}) {
				return
			}
			idle = time.Now()
		}
		e.wait(r.Context(), followPoll)
		if r.Context().Err() != nil {
			return
		}
	}
}
