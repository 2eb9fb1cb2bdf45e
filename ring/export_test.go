package ring

// WholeShare is the fraction of r's first-owner index (Ring.whole8 or
// whole16) that answers a lookup without the table: 0 when the index was
// not built.
func WholeShare(r *Ring) float64 {
	n, size := 0, len(r.whole8)+len(r.whole16)
	if size == 0 {
		return 0
	}
	for f := range size {
		if r.wholeEntryAt(f) != 0 {
			n++
		}
	}
	return float64(n) / float64(size)
}

// WholeEntrySize is the size in bytes of an entry of r's first-owner
// index: 1, 2, or 0 without one.
func WholeEntrySize(r *Ring) int {
	switch {
	case r.whole8 != nil:
		return 1
	case r.whole16 != nil:
		return 2
	}
	return 0
}

func (r *Ring) wholeEntryAt(f int) int {
	if r.whole8 != nil {
		return int(r.whole8[f])
	}
	return int(r.whole16[f])
}
