package lru

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestCacheExpiry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Time
		renew   time.Duration
		gets    []time.Duration // after t0, each must find the key
		gone    time.Duration   // after t0, the key must be forgotten
	}{
		{name: "fixed expiry is not moved by use", expires: t0.Add(time.Minute), gets: []time.Duration{30 * time.Second, time.Minute}, gone: time.Minute + time.Second},
		{name: "renewed expiry lasts while used", expires: t0.Add(time.Minute), renew: time.Minute, gets: []time.Duration{50 * time.Second, 100 * time.Second}, gone: 161 * time.Second},
		{name: "zero expiry never expires", gets: []time.Duration{24 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[int](2)
			c.Put("a", 1, tc.expires)
			for _, d := range tc.gets {
				if v, ok := c.Get("a", t0.Add(d), tc.renew); !ok || v != 1 {
					t.Fatalf("at +%v: %v %v, want 1 true", d, v, ok)
				}
			}
			if tc.gone == 0 {
				return
			}
			if _, ok := c.Get("a", t0.Add(tc.gone), tc.renew); ok {
				t.Errorf("at +%v: still there", tc.gone)
			}
			if c.Len() != 0 {
				t.Errorf("an expired key that was looked up is still held: len %d", c.Len())
			}
		})
	}
}

func TestCacheForgetsLeastRecentlyUsed(t *testing.T) {
	c := New[string](2)
	c.Put("a", "A", time.Time{})
	c.Put("b", "B", time.Time{})
	c.Get("a", t0, 0)
	c.Put("c", "C", time.Time{})
	if _, ok := c.Get("b", t0, 0); ok {
		t.Error("b, least recently used, should have been pushed out")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k, t0, 0); !ok {
			t.Errorf("%s should remain", k)
		}
	}
}

func TestCacheEvictsInOrderOfLastUse(t *testing.T) {
	c := New[int](3)
	for i, k := range []string{"1", "2", "3", "4"} {
		c.Put(k, i, time.Time{})
	}
	c.Get("2", t0, 0)
	c.Put("3", 30, time.Time{}) // an update is a use
	c.Put("5", 5, time.Time{})
	c.Put("6", 6, time.Time{})
	// Used last to first: 6 5 3 2 4 1; three remain.
	for k, want := range map[string]int{"6": 6, "5": 5, "3": 30} {
		if v, ok := c.Get(k, t0, 0); !ok || v != want {
			t.Errorf("%s: %v %v, want %v", k, v, ok, want)
		}
	}
	for _, k := range []string{"1", "2", "4"} {
		if _, ok := c.Get(k, t0, 0); ok {
			t.Errorf("%s should have been pushed out", k)
		}
	}
	if c.Len() != 3 {
		t.Errorf("len %d, want 3", c.Len())
	}
}
