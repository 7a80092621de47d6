package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// ReformatHCL returns src in the canonical HCL layout, or the syntax errors
// that stop it from being formatted safely (hclwrite would format broken
// text too, and could make it worse). filename names src in diagnostics.
func ReformatHCL(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if diags := checkHCLNesting(src, filename); diags.HasErrors() {
		return nil, diags
	}
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// HCLFiles expands paths into the .hcl files they name: a file as it is
// (an error unless its name ends in .hcl), a folder by the .hcl files in it
// and, when recursive, in its sub-folders, hidden ones skipped. Errors from
// the file system are returned as they are: they name the path.
func HCLFiles(paths []string, recursive bool) ([]string, error) {
	var out []string
	for _, arg := range paths {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if !isHCLName(arg) {
				return nil, fmt.Errorf("%s is not an .hcl file", arg)
			}
			out = append(out, arg)
			continue
		}
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != arg && (!recursive || strings.HasPrefix(d.Name(), ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if isHCLName(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isHCLName(path string) bool { return strings.EqualFold(filepath.Ext(path), ".hcl") }
