package sdk

import "container/heap"

// timerKey is one timer: a time, a key group and an encoded key.
type timerKey struct {
	ts  int64
	kg  int
	key string
}

// timerQueue orders timers by time (then key, for a deterministic order)
// and forgets duplicates. Deleted timers stay in the heap until they come
// up and are skipped.
type timerQueue struct {
	h   timerHeap
	set map[timerKey]struct{}
}

type timers struct {
	event, processing timerQueue
}

func newTimers() *timers {
	return &timers{
		event:      timerQueue{set: map[timerKey]struct{}{}},
		processing: timerQueue{set: map[timerKey]struct{}{}},
	}
}

// add registers a timer and reports whether it is new.
func (q *timerQueue) add(k timerKey) bool {
	if _, dup := q.set[k]; dup {
		return false
	}
	q.set[k] = struct{}{}
	heap.Push(&q.h, k)
	return true
}

// remove deletes a timer; its heap entry goes when it comes up, or when
// deleted entries outnumber live ones and the heap is rebuilt, so that the
// delete-and-register pattern does not grow memory.
func (q *timerQueue) remove(k timerKey) {
	delete(q.set, k)
	if len(q.h) > 2*len(q.set)+64 {
		live := q.h[:0]
		for _, t := range q.h {
			if _, ok := q.set[t]; ok {
				live = append(live, t)
			}
		}
		clear(q.h[len(live):])
		q.h = live
		heap.Init(&q.h)
	}
}

// popDue returns the earliest live timer at or before ts.
func (q *timerQueue) popDue(ts int64) (timerKey, bool) {
	for len(q.h) > 0 && q.h[0].ts <= ts {
		k := heap.Pop(&q.h).(timerKey)
		if _, live := q.set[k]; live {
			delete(q.set, k)
			return k, true
		}
	}
	return timerKey{}, false
}

// len returns the number of live timers.
func (q *timerQueue) len() int { return len(q.set) }

type timerHeap []timerKey

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	if h[i].kg != h[j].kg {
		return h[i].kg < h[j].kg
	}
	return h[i].key < h[j].key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerKey)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
