package chatwebhooks

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// xcaddy.json must build the same Caddy that go.mod pins, with this plugin
// replaced by the local tree.
func TestXcaddyManifestAgreesWithGoMod(t *testing.T) {
	var manifest struct {
		CaddyVersion string `json:"caddy_version"`
		Plugins      []struct {
			ModulePath string `json:"module_path"`
		} `json:"plugins"`
		Replacements []struct {
			Old string `json:"old"`
			New string `json:"new"`
		} `json:"replacements"`
	}
	raw, err := os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := regexp.MustCompile(`(?m)^module (\S+)`).FindSubmatch(gomod)
	caddy := regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/caddy/v2 (v\S+)`).FindSubmatch(gomod)
	if module == nil || caddy == nil {
		t.Fatal("go.mod lacks the module line or the caddy requirement")
	}
	if manifest.CaddyVersion != string(caddy[1]) {
		t.Errorf("xcaddy.json caddy_version %q, go.mod requires %s", manifest.CaddyVersion, caddy[1])
	}
	if len(manifest.Plugins) != 1 || manifest.Plugins[0].ModulePath != string(module[1]) {
		t.Errorf("xcaddy.json plugins %+v, want exactly this module %s", manifest.Plugins, module[1])
	}
	if len(manifest.Replacements) != 1 || manifest.Replacements[0].Old != string(module[1]) || manifest.Replacements[0].New != "./" {
		t.Errorf("xcaddy.json replacements %+v, want %s => ./", manifest.Replacements, module[1])
	}
}
