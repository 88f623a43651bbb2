package delivery

import "sync"

// freshBytes bounds the bodies a BoltStore keeps of records it has just
// added: enough for the messages between their commit and their first
// attempt at thousands per second, small beside a backlog.
const freshBytes = 2 << 20

// freshCache holds records just added to a BoltStore until their first
// Load, so that a first attempt, the common and only one when receivers
// are healthy, neither opens a read transaction nor decodes what it has
// just encoded. The oldest go first when it passes freshBytes; Load then
// reads them from the file as it reads every later attempt's.
type freshCache struct {
	mu    sync.Mutex
	recs  map[uint64]*Record
	order []uint64 // in Add order; may still name records taken since
	bytes int
}

// put keeps recs, stored and committed, evicting the oldest beyond
// freshBytes.
func (c *freshCache) put(recs []*Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recs == nil {
		c.recs = map[uint64]*Record{}
	}
	for _, r := range recs {
		if len(r.Body) > freshBytes/8 {
			continue // a large body would push out many small ones
		}
		c.recs[r.Seq] = r
		c.order = append(c.order, r.Seq)
		c.bytes += len(r.Body)
	}
	for c.bytes > freshBytes && len(c.order) > 0 {
		c.remove(c.order[0])
		c.order = c.order[1:]
	}
	// Taken records leave their seqs in order; drop them once they
	// outnumber the kept ones, so order stays proportional to recs.
	if len(c.order) > 2*len(c.recs)+1024 {
		kept := c.order[:0]
		for _, seq := range c.order {
			if c.recs[seq] != nil {
				kept = append(kept, seq)
			}
		}
		c.order = kept
	}
}

// take returns the record seq and forgets it, or nil.
func (c *freshCache) take(seq uint64) *Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remove(seq)
}

// drop forgets seqs: they are no longer pending.
func (c *freshCache) drop(seqs ...uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, seq := range seqs {
		c.remove(seq)
	}
}

func (c *freshCache) remove(seq uint64) *Record {
	r := c.recs[seq]
	if r != nil {
		delete(c.recs, seq)
		c.bytes -= len(r.Body)
	}
	return r
}
