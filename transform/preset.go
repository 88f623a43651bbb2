package transform

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Preset is a built-in source: rules that understand one real API or channel
// format, written in the same rule language users write.
type Preset struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Rules       []Rule `json:"rules"`
}

//go:embed presets/*.json
var presetFiles embed.FS

// presets holds every built-in source by name; adding a platform means adding
// a file under presets/.
var presets = loadBuiltins(presetFiles, "presets", func(p Preset) string { return p.Name }, func(p Preset) error {
	for _, r := range p.Rules {
		if _, err := compileRule(r); err != nil {
			return err
		}
	}
	return nil
})

// PresetNames lists the built-in sources, sorted.
func PresetNames() []string { return slices.Sorted(maps.Keys(presets)) }

// loadBuiltins decodes every dir/*.json file of fsys, strictly, and returns
// them by name, which must be the file's. check vets each one. A broken
// built-in file is a programming error caught by every test run, hence the
// panic.
func loadBuiltins[T any](fsys embed.FS, dir string, name func(T) string, check func(T) error) map[string]T {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		panic(err)
	}
	out := map[string]T{}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		file := dir + "/" + e.Name()
		b, err := fsys.ReadFile(file)
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
