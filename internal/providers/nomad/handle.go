package nomad

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flowctl/flowctl/internal/providers"
)

// handle is the serialised Handle of a job. It never holds the token.
type handle struct {
	// JobID, Namespace and Region identify the job; JobModifyIndex is the
	// index flowctl registered it at.
	JobID          string `json:"job_id"`
	Namespace      string `json:"namespace,omitempty"`
	Region         string `json:"region,omitempty"`
	JobModifyIndex uint64 `json:"job_modify_index"`
	// Task names the job's one task (the component's id), for logs.
	Task     string `json:"task"`
	Address  string `json:"address"`
	Pipeline string `json:"pipeline"`
	Lineage  string `json:"lineage,omitempty"`
}

func decodeHandle(h providers.Handle) (handle, error) {
	var hd handle
	if err := json.Unmarshal(h, &hd); err != nil {
		return handle{}, fmt.Errorf("nomad: invalid handle: %w", err)
	}
	if hd.JobID == "" {
		return handle{}, errors.New("nomad: invalid handle: no job ID")
	}
	return hd, nil
}

func encodeHandle(hd handle) providers.Handle {
	b, _ := json.Marshal(hd)
	return b
}

// fingerprint changes whenever the job is registered again or stopped: by
// flowctl or anyone else.
func fingerprint(jobID string, jobModifyIndex uint64) string {
	return fmt.Sprintf("job=%s,index=%d", jobID, jobModifyIndex)
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
