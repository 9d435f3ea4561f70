package sdk

import "testing"

// TestDeletedTimersDoNotAccumulate: the delete-and-register pattern keeps
// the heap bounded by the live timers.
func TestDeletedTimersDoNotAccumulate(t *testing.T) {
	q := newTimers().event
	for i := range 100000 {
		k := timerKey{ts: int64(i), key: "k"}
		q.add(k)
		q.remove(k)
	}
	if len(q.h) > 2*q.len()+64 {
		t.Fatalf("%d heap entries for %d live timers", len(q.h), q.len())
	}
	q.add(timerKey{ts: 5, key: "a"})
	q.add(timerKey{ts: 3, key: "b"})
	for i := range 1000 {
		k := timerKey{ts: int64(10 + i), key: "c"}
		q.add(k)
		q.remove(k)
	}
	if k, ok := q.popDue(100); !ok || k.key != "b" {
		t.Fatalf("first due timer %v %v, want b", k, ok)
	}
	if k, ok := q.popDue(100); !ok || k.key != "a" {
		t.Fatalf("second due timer %v %v, want a", k, ok)
	}
	if _, ok := q.popDue(1 << 40); ok {
		t.Fatal("a deleted timer fired")
	}
}
