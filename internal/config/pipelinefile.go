package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Patterns that tell a pipeline file from other HCL or YAML in a folder
// (variable files, CI configuration). They look at text, not syntax, so a
// pipeline with a syntax error is still found and its errors reported.
var (
	hclPipelineBlock = regexp.MustCompile(`(?m)^\s*pipeline\s+"`)
	yamlPipelineKind = regexp.MustCompile(`(?m)^kind:\s*["']?Pipeline["']?\s*(#.*)?$`)
)

// FindPipelineFile returns the pipeline file a command works on. args are
// the command's arguments: the first, when given, is the file (taken as it
// is, whatever its name) or a folder holding one. Without it the file is the
// single pipeline file in dir.
func FindPipelineFile(dir string, args []string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		info, err := os.Stat(args[0])
		if err != nil {
			return "", fmt.Errorf("pipeline file: %w", err)
		}
		if !info.IsDir() {
			return args[0], nil
		}
		dir = args[0]
	}
	candidates, err := pipelineFiles(dir)
	if err != nil {
		return "", err
	}
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		return "", fmt.Errorf("no pipeline file in %s: looked for *.hcl, *.yaml and *.yml files holding a pipeline; name one as an argument", displayDir(dir))
	default:
		return "", fmt.Errorf("several pipeline files in %s: %s; name one as an argument", displayDir(dir), strings.Join(candidates, ", "))
	}
}

// pipelineFiles lists the files in dir that hold a pipeline, sorted.
func pipelineFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("look for a pipeline file: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		ok, err := isPipelineFile(path)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out, nil
}

func isPipelineFile(path string) (bool, error) {
	var pattern *regexp.Regexp
	switch strings.ToLower(filepath.Ext(path)) {
	case ".hcl":
		pattern = hclPipelineBlock
	case ".yaml", ".yml":
		pattern = yamlPipelineKind
	default:
		return false, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("look for a pipeline file: %w", err)
	}
	return pattern.Match(src), nil
}

func displayDir(dir string) string {
	if dir == "." || dir == "" {
		return "the current folder"
	}
	return dir
}
