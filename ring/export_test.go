package ring

// WholeShare is the fraction of r's first-owner index (Ring.whole) that
// answers a lookup without the table: 0 when the index was not built.
func WholeShare(r *Ring) float64 {
	if len(r.whole) == 0 {
		return 0
	}
	n := 0
	for _, m := range r.whole {
		if m != 0 {
			n++
		}
	}
	return float64(n) / float64(len(r.whole))
}
