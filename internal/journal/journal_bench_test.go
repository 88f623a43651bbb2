package journal

import (
	"errors"
	"testing"
)

// BenchmarkAppend is what the journal adds to a request: encoding one
// chat exchange into the mapped segment. Records are committed 64 at a
// time, as the pipeline does after a grouped Enqueue, so segments rotate
// and are deleted as they would be under steady traffic. Appending in a
// loop outruns the goroutine that makes the next segment, which a proxy's
// requests do not: an append it is behind for waits, untimed, and tries
// again, counted in behind/op.
func BenchmarkAppend(b *testing.B) {
	j, _, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ex := chatExchange(1)
	var done []Ticket
	behind := 0
	b.ReportAllocs()
	for b.Loop() {
		t, err := j.Append(7, &ex)
		for errors.Is(err, ErrBehind) {
			behind++
			b.StopTimer()
			waitSpare(j)
			b.StartTimer()
			t, err = j.Append(7, &ex)
		}
		if err != nil {
			b.Fatal(err)
		}
		if done = append(done, t); len(done) == 64 {
			j.Commit(done)
			done = done[:0]
		}
	}
	b.ReportMetric(float64(behind)/float64(b.N), "behind/op")
}
