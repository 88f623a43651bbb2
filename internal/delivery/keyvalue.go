package delivery

import (
	bolt "go.etcd.io/bbolt"
)

// KV is a small key-value space kept in the outbox's own store, for state
// that should live as long as the queued messages do (the Caddy layer keeps
// conversation state there, so a restart does not forget it).
type KV interface {
	// Load calls fn for every stored pair; val is only valid during fn.
	Load(fn func(key string, val []byte)) error
	// Write stores puts and removes deletes in one commit.
	Write(puts map[string][]byte, deletes []string) error
}

// KeyValues returns the key-value space called name, kept in the outbox
// file.
func (s *BoltStore) KeyValues(name string) KV {
	return boltKV{store: s, bucket: []byte("kv/" + name)}
}

type boltKV struct {
	store  *BoltStore
	bucket []byte
}

func (kv boltKV) Load(fn func(key string, val []byte)) error {
	return kv.store.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			fn(string(k), v)
			return nil
		})
	})
}

func (kv boltKV) Write(puts map[string][]byte, deletes []string) error {
	return kv.store.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		for k, v := range puts {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for _, k := range deletes {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}
