package derive

import (
	"embed"
	"maps"
	"slices"

	"github.com/chatwebhooks/chatwebhooks/internal/builtin"
)

// preset is a built-in source: rules that understand one real API or channel
// format, written in the same rule language users write.
type preset struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Rules       []Rule `json:"rules"`
}

//go:embed presets/*.json
var presetFiles embed.FS

// presets holds every built-in source by name; adding a platform means adding
// a file under presets/.
var presets = builtin.Load(presetFiles, "presets", func(p preset) string { return p.Name }, func(p preset) error {
	for _, r := range p.Rules {
		if _, err := compileRule(r); err != nil {
			return err
		}
	}
	return nil
})

// PresetNames lists the built-in sources, sorted.
func PresetNames() []string { return slices.Sorted(maps.Keys(presets)) }
