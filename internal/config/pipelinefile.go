package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Patterns that tell a pipeline file from other HCL or YAML in a folder
// (variable files, CI configuration). They look at text, not syntax, so a
// pipeline with a syntax error is still found and its errors reported.
var (
	hclPipelineBlock = regexp.MustCompile(`(?m)^\s*pipeline\s+"`)
	hclPipelineName  = regexp.MustCompile(`(?m)^\s*pipeline\s+"([^"]*)"`)
	yamlPipelineKind = regexp.MustCompile(`(?m)^kind:\s*["']?Pipeline["']?\s*(#.*)?$`)
)

// FindOption changes how FindPipelineFile looks.
type FindOption func(*findOptions)

type findOptions struct{ note io.Writer }

// NoteTo has FindPipelineFile say on w which file it chose when a folder
// holds the same pipeline in both formats.
func NoteTo(w io.Writer) FindOption { return func(o *findOptions) { o.note = w } }

// FindPipelineFile returns the pipeline file a command works on. args are
// the command's arguments: the first, when given, is the file (taken as it
// is, whatever its name) or a folder holding one. Without it the file is the
// single pipeline file in dir.
//
// A folder may hold one pipeline in both formats (pipeline.hcl and
// pipeline.yaml naming the same pipeline, as the examples do): both files
// share the folder's state file (.flowctl/NAME.state.db), so either gives
// the same plan, status and history, and the HCL file is taken. Files that
// name different pipelines are an error: which one was meant cannot be
// guessed.
func FindPipelineFile(dir string, args []string, opts ...FindOption) (string, error) {
	var o findOptions
	for _, opt := range opts {
		opt(&o)
	}
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
		msg := fmt.Sprintf("no pipeline file in %s: looked for *.hcl, *.yaml and *.yml files holding a pipeline; name one as an argument", displayDir(dir))
		if below := pipelineFolders(dir, 8); len(below) > 0 {
			msg += fmt.Sprintf(" (a file or a folder: pipelines are in %s)", strings.Join(below, ", "))
		}
		return "", fmt.Errorf("%s", msg)
	}
	if chosen, name, ok := samePipeline(candidates); ok {
		if o.note != nil {
			var others []string
			for _, c := range candidates {
				if c != chosen {
					others = append(others, filepath.Base(c))
				}
			}
			fmt.Fprintf(o.note, "Using %s: %s beside it holds the same pipeline %q (name a file to use another).\n", chosen, strings.Join(others, ", "), name)
		}
		return chosen, nil
	}
	return "", fmt.Errorf("several pipeline files in %s: %s; name one as an argument", displayDir(dir), strings.Join(candidates, ", "))
}

// samePipeline reports whether the files all name one pipeline, and then
// the one HCL file among them. It is false when a name cannot be read, when
// they name different pipelines, or when there is not exactly one HCL file.
func samePipeline(files []string) (chosen, name string, ok bool) {
	for _, f := range files {
		n := pipelineName(f)
		if n == "" || (name != "" && n != name) {
			return "", "", false
		}
		name = n
		if strings.EqualFold(filepath.Ext(f), ".hcl") {
			if chosen != "" {
				return "", "", false
			}
			chosen = f
		}
	}
	return chosen, name, chosen != ""
}

// pipelineName is the name a pipeline file gives its pipeline, read without
// loading it (an HCL file may need variables to load): the label of HCL's
// pipeline block, YAML's metadata.name. It is "" when it cannot be read.
func pipelineName(path string) string {
	src, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if strings.EqualFold(filepath.Ext(path), ".hcl") {
		if m := hclPipelineName.FindSubmatch(src); m != nil {
			return string(m[1])
		}
		return ""
	}
	var doc struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	if yaml.Unmarshal(src, &doc) != nil {
		return ""
	}
	return doc.Metadata.Name
}

// pipelineFolders lists, relative to dir, up to max folders below it (two
// levels deep, hidden folders left out) that hold a pipeline file: where a
// user who ran a command in the wrong folder should look.
func pipelineFolders(dir string, max int) []string {
	var out []string
	more := false
	root := filepath.Clean(dir)
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path == root {
			return nil
		}
		rel, rerr := filepath.Rel(root, path)
		if rerr != nil {
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "vendor" || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if files, err := pipelineFiles(path); err == nil && len(files) > 0 {
			if len(out) == max {
				more = true
				return filepath.SkipAll
			}
			out = append(out, filepath.Join(displayRel(dir), rel))
		}
		if strings.Count(rel, string(filepath.Separator)) >= 1 {
			return filepath.SkipDir
		}
		return nil
	})
	if more {
		out = append(out, "…")
	}
	return out
}

func displayRel(dir string) string {
	if dir == "." || dir == "" {
		return ""
	}
	return dir
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
