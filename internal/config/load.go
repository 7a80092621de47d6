package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Formats a pipeline file may be written in.
const (
	FormatYAML = "yaml"
	FormatHCL  = "hcl"
)

// VarArg is one -var NAME=VALUE or -var-file FILE, in command-line order:
// later ones win, as in Terraform.
type VarArg struct {
	Name, Value string // for -var
	File        string // for -var-file (HCL, or JSON when it ends in .json)
}

// LoadOptions carries what the command line adds to a pipeline file.
type LoadOptions struct {
	Vars []VarArg
	// Environ is the environment searched for FLOWCTL_VAR_name; nil means
	// os.Environ().
	Environ []string
}

// DetectFormat tells YAML from HCL by file name, then by content.
func DetectFormat(filename string, src []byte) string {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".yaml", ".yml":
		return FormatYAML
	case ".hcl", ".flowctl":
		return FormatHCL
	}
	trimmed := bytes.TrimSpace(src)
	if bytes.Contains(trimmed, []byte("apiVersion:")) || bytes.HasPrefix(trimmed, []byte("---")) {
		return FormatYAML
	}
	return FormatHCL
}

// Load reads, normalises and validates the pipeline in path. The pipeline is
// nil only when the file could not be parsed at all; diagnostics hold every
// error and warning found.
func Load(path string, opts LoadOptions) (*Pipeline, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline file", Detail: fmt.Sprintf("%s: %v", path, err)}}
	}
	return LoadBytes(src, path, opts)
}

// LoadBytes is Load for a file already read.
func LoadBytes(src []byte, filename string, opts LoadOptions) (*Pipeline, hcl.Diagnostics) {
	var (
		p     *Pipeline
		diags hcl.Diagnostics
	)
	switch format := DetectFormat(filename, src); format {
	case FormatYAML:
		p, diags = loadYAML(src, filename)
	default:
		p, diags = loadHCL(src, filename, opts)
	}
	if p == nil {
		SortDiagnostics(diags)
		return nil, diags
	}
	p.File = filename
	normalize(p)
	diags = append(diags, Validate(p)...)
	SortDiagnostics(diags)
	return p, diags
}
