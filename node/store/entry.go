package store

// Entry is one key's full state, as replication and hand-off move it: a
// value or a tombstone, with its expiry and version.
type Entry struct {
	// Value is the entry's value: nil for a tombstone, non-nil (possibly
	// empty) for a live entry returned by the Store.
	Value []byte
	// ExpireAt is the expiry in Unix ns; 0 means none. For a tombstone it is
	// when the tombstone may be forgotten.
	ExpireAt int64
	// Version orders writes for last-writer-wins; 0 means unversioned.
	Version uint64
	// Tombstone marks a deleted key: reads treat it as absent, but its
	// Version keeps older copies from bringing the key back.
	Tombstone bool
}

// Lookup returns key's full state, a tombstone included, with Value copied.
// ok is false if the key has neither a live entry nor a tombstone, or it
// expired. It is a replication read: it counts in neither Hits nor Misses
// and does not mark the entry as used for eviction.
func (s *Store) Lookup(key string) (e Entry, ok bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok {
		return Entry{}, false
	}
	e = sh.entryLocked(r)
	if !e.Tombstone {
		e.Value = cloneValue(e.Value)
	}
	return e, true
}

// Update atomically reads key's current state and replaces it with what fn
// returns, under the key's shard lock: it is how a coordinator derives a new
// versioned state from the old one, and how a replica applies an incoming
// copy only if it is newer, without a window between read and write.
//
// fn receives the live entry or tombstone (found is false if neither
// exists, or it expired). cur.Value is a scratch copy valid only during fn:
// fn may modify it, and next.Value may alias it. fn must be fast and must
// not call the Store (it runs with the shard locked). If fn returns
// write=false nothing changes; otherwise next is stored: a tombstone if
// next.Tombstone (next.Value is then ignored), and a removal of whatever was
// there if next.ExpireAt is at or before now.
//
// The returned Entry is what is stored afterwards, its Value a copy owned
// by the caller; it is the zero Entry if nothing is stored. wrote reports
// whether fn asked to write. Size limits apply: an oversized key fails
// before fn is called, an oversized next.Value fails after it, with an
// error wrapping ErrTooLarge, and then nothing changes and wrote is false.
func (s *Store) Update(key string, fn func(cur Entry, found bool) (next Entry, write bool)) (stored Entry, wrote bool, err error) {
	return s.update(key, fn, true)
}

// UpdateNoCopy is Update for callers that do not need the stored entry
// back (a replica applying a copy, a conditional drop): it skips copying
// the value out, which Update does even when fn writes nothing. fn has the
// same contract as Update's.
func (s *Store) UpdateNoCopy(key string, fn func(cur Entry, found bool) (next Entry, write bool)) (wrote bool, err error) {
	_, wrote, err = s.update(key, fn, false)
	return wrote, err
}

// update is Update; the stored entry is returned only if result.
func (s *Store) update(key string, fn func(cur Entry, found bool) (next Entry, write bool), result bool) (stored Entry, wrote bool, err error) {
	if err := s.checkKey(key); err != nil {
		return Entry{}, false, err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, found := sh.findLocked(h, key, now)
	var cur Entry
	if found {
		cur = sh.entryLocked(r)
		if !cur.Tombstone {
			// fn sees a copy in shard scratch, not the log: next.Value may
			// alias it, and writing next may evict or move other entries
			// and so reuse the chunk cur.Value would point into.
			sh.build = append(sh.build[:0], cur.Value...)
			cur.Value = sh.build
			if cur.Value == nil {
				cur.Value = []byte{}
			}
		}
	}
	defer sh.trimBuildLocked()
	next, write := fn(cur, found)
	if !write {
		if !found || !result {
			return Entry{}, false, nil
		}
		// Decoded again: fn may have scribbled on cur.
		cur = sh.entryLocked(r)
		if !cur.Tombstone {
			cur.Value = cloneValue(cur.Value)
		}
		return cur, false, nil
	}
	if next.Tombstone {
		next.Value = nil
	} else if err := s.checkValue(len(next.Value)); err != nil {
		return Entry{}, false, err
	}
	if err := s.writeLocked(sh, h, key, r, found, next.Value, next.ExpireAt, next.Version, next.Tombstone, now); err != nil {
		return Entry{}, false, err
	}
	if (next.ExpireAt != 0 && next.ExpireAt <= now) || !result {
		return Entry{}, true, nil
	}
	if !next.Tombstone {
		next.Value = cloneValue(next.Value)
	}
	return next, true, nil
}

// entryLocked decodes r; a live entry's Value points into the shard (log or
// scratch) and is valid until the shard changes.
func (sh *shard) entryLocked(r ref) Entry {
	var e Entry
	e.ExpireAt, e.Version = sh.metaLocked(r)
	e.Tombstone = r.tomb()
	if !e.Tombstone {
		e.Value = sh.valueLocked(r)
	}
	return e
}

// trimBuildLocked drops a large build scratch so that one big value does
// not stay pinned by the shard.
func (sh *shard) trimBuildLocked() {
	if cap(sh.build) > 64<<10 {
		sh.build = nil
	}
}

// cloneValue copies a live value; the copy is non-nil even when empty, so
// that only a tombstone has a nil Value.
func cloneValue(v []byte) []byte {
	out := make([]byte, len(v))
	copy(out, v)
	return out
}
