package docker

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flowctl/flowctl/internal/providers"
)

// handle is the serialised Handle of a container.
type handle struct {
	// ID is the full container ID: the identity. Name and the rest are for
	// messages and for finding the pipeline's network.
	ID       string `json:"container_id"`
	Name     string `json:"name"`
	Address  string `json:"address"`
	Pipeline string `json:"pipeline"`
	Lineage  string `json:"lineage,omitempty"`
}

func decodeHandle(h providers.Handle) (handle, error) {
	var hd handle
	if err := json.Unmarshal(h, &hd); err != nil {
		return handle{}, fmt.Errorf("docker: invalid handle: %w", err)
	}
	if hd.ID == "" {
		return handle{}, errors.New("docker: invalid handle: no container ID")
	}
	return hd, nil
}

func encodeHandle(hd handle) providers.Handle {
	b, _ := json.Marshal(hd)
	return b
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
