// Package builtin reads the data files compiled into the module: built-in
// sources (presets) and receiver schemas are JSON documents, one per file.
package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Load decodes every dir/*.json file of fsys, strictly, and returns them by
// name, which must be the file's. check vets each one. A broken built-in
// file is a programming error caught by every test run, hence the panic.
func Load[T any](fsys fs.FS, dir string, name func(T) string, check func(T) error) map[string]T {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		panic(err)
	}
	out := map[string]T{}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		file := path.Join(dir, e.Name())
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			panic(err)
		}
		var v T
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			panic(fmt.Sprintf("%s: %v", file, err))
		}
		n := name(v)
		if _, dup := out[n]; dup || n != base {
			panic(fmt.Sprintf("%s: name %q must be unique and match the file name", file, n))
		}
		if err := check(v); err != nil {
			panic(fmt.Sprintf("%s: %v", file, err))
		}
		out[n] = v
	}
	return out
}
