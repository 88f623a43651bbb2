package transform

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
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
var presets = loadPresets()

func loadPresets() map[string]Preset {
	out := map[string]Preset{}
	for _, f := range mustReadDir(presetFiles, "presets") {
		var p Preset
		mustDecode(presetFiles, "presets/"+f, &p)
		if _, dup := out[p.Name]; dup || p.Name != strings.TrimSuffix(f, ".json") {
			panic(fmt.Sprintf("presets/%s: name %q must be unique and match the file name", f, p.Name))
		}
		for _, r := range p.Rules {
			if _, err := compileRule(r); err != nil {
				panic(fmt.Sprintf("presets/%s: %v", f, err))
			}
		}
		out[p.Name] = p
	}
	return out
}

func presetNames() string { return sortedKeys(presets) }

// PresetNames lists the built-in sources.
func PresetNames() []string { return strings.Split(presetNames(), ", ") }

func sortedKeys[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// mustReadDir and mustDecode read embedded data; a broken built-in file is a
// programming error caught by every test run, hence the panic.
func mustReadDir(fs embed.FS, dir string) []string {
	entries, err := fs.ReadDir(dir)
	if err != nil {
		panic(err)
	}
	var names []string
	for _, e := range entries {
		if path.Ext(e.Name()) == ".json" {
			names = append(names, e.Name())
		}
	}
	return names
}

func mustDecode(fs embed.FS, name string, into any) {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		panic(fmt.Sprintf("%s: %v", name, err))
	}
}
