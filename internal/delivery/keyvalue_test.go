package delivery

import (
	"path/filepath"
	"testing"
)

func TestKeyValuesLiveInTheBoltOutboxAndSurviveReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	store, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := store.KeyValues("conversations")
	if err := kv.Write(map[string][]byte{"1/150": []byte(`{"priority":"high"}`), "1/151": []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := kv.Write(nil, []string{"1/151"}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	store, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	got := map[string]string{}
	if err := store.KeyValues("conversations").Load(func(k string, v []byte) { got[k] = string(v) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["1/150"] != `{"priority":"high"}` {
		t.Errorf("after reopening: %v", got)
	}
}
