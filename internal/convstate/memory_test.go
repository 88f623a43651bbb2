package convstate

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable time source for Memory.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestMemoryForgetsLeastRecentlyUsed(t *testing.T) {
	m := NewMemory(2, 0)
	m.Put("a", []byte(`{"status":"open"}`))
	m.Put("b", []byte(`{"status":"pending"}`))
	m.Get("a") // a is now the most recently used
	m.Put("c", []byte(`{"status":"resolved"}`))
	if m.Get("b") != nil {
		t.Error("b should have been pushed out")
	}
	if string(m.Get("a")) != `{"status":"open"}` || string(m.Get("c")) != `{"status":"resolved"}` {
		t.Errorf("a and c should remain: %s %s", m.Get("a"), m.Get("c"))
	}
	if m.Len() != 2 {
		t.Errorf("len %d, want 2", m.Len())
	}
}

func TestMemoryForgetsAfterTTLWithoutUse(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(10, time.Minute)
	m.now = clock.now
	m.Put("a", []byte(`{}`))
	m.Put("b", []byte(`{}`))
	clock.t = clock.t.Add(50 * time.Second)
	if m.Get("a") == nil {
		t.Fatal("a expired too early")
	}
	clock.t = clock.t.Add(50 * time.Second) // a was used 50 s ago, b 100 s ago
	if m.Get("a") == nil {
		t.Error("a was used within the TTL and should remain")
	}
	if m.Get("b") != nil {
		t.Error("b was unused for longer than the TTL and should be gone")
	}
}

func TestMemoryKeepsItsOwnCopy(t *testing.T) {
	m := NewMemory(0, 0)
	buf := []byte(`{"status":"open"}`)
	m.Put("a", buf)
	copy(buf, `{"status":"xxxx"}`)
	if got := string(m.Get("a")); got != `{"status":"open"}` {
		t.Errorf("stored value changed with the caller's buffer: %s", got)
	}
}

func TestMemoryIsSafeForConcurrentUse(t *testing.T) {
	m := NewMemory(50, time.Hour)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				key := fmt.Sprint((g * i) % 80)
				m.Put(key, []byte(fmt.Sprintf(`{"n":%d}`, i)))
				m.Get(key)
			}
		}()
	}
	wg.Wait()
	if m.Len() > 50 {
		t.Errorf("len %d exceeds the maximum", m.Len())
	}
}
