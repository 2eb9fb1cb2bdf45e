package transport

// Replies is storage a flight decodes its replies into (see StartInto),
// for a caller that is done with them before it starts the next flight
// with the same Replies: a forwarding node copies each reply into its
// client's answer and moves on. Such a caller then allocates nothing per
// reply for the replies and their values (an error message, a member
// list or a key list is still allocated, as it is without Replies).
// Without it every reply is allocated, with a copy of its value, since
// the caller may keep them for as long as it likes; on a node forwarding
// GETs that was most of its allocations (and the garbage collector's
// work) per request.
//
// A flight's replies stay valid, in its Replies, until the next flight is
// started with the same Replies or Reset is called; releasing the flight
// does not end them. One Replies serves one flight at a time: the next
// may start once the previous one's Wait has returned. The zero value is
// ready to use. Values larger than the connection's read buffer (frames
// read into a buffer of their own) are not copied: the reply points into
// that buffer, as it would without Replies.
type Replies struct {
	resps []Response
	vals  []byte
}

// maxKeptReplyBytes and maxKeptReplies bound the storage a Replies keeps
// from one flight to the next (about 100 KiB), so that one flight of huge
// values, or of very many replies, does not pin its memory for good: a
// forwarding node keeps a few per client connection. A flight of 16
// forwarded GETs of 100-byte values takes under 2 KiB of values.
const (
	maxKeptReplyBytes = 64 << 10
	maxKeptReplies    = 256
)

// Len returns how many replies r holds: those of the last flight started
// with it, or none after Reset.
func (r *Replies) Len() int { return len(r.resps) }

// Reset drops the replies of the last flight started with r, keeping the
// storage for the next unless it is unusually large. Their values are
// released with them, including those that outgrew the storage and were
// moved to arrays of their own. Call it only once that flight's Wait has
// returned.
func (r *Replies) Reset() {
	clear(r.resps) // the slots past it were cleared by an earlier Reset
	r.resps = r.resps[:0]
	if cap(r.resps) > maxKeptReplies {
		r.resps = nil
	}
	r.vals = r.vals[:0]
	if cap(r.vals) > maxKeptReplyBytes {
		r.vals = nil
	}
}

// prepare makes room for n replies, dropping the previous flight's. It is
// called by the goroutine starting the flight, before any request is
// registered, so no reader can be writing into it.
func (r *Replies) prepare(n int) {
	r.Reset()
	if cap(r.resps) < n {
		r.resps = make([]Response, n)
	} else {
		r.resps = r.resps[:n]
	}
}

// keep stores reply i, decoded by a connection's reader, and returns it.
// If aliased, its value points into the reader's buffer, which the next
// read overwrites: it is copied into r. Called with the connection's lock
// held, which is what keeps it from writing into a flight its caller has
// abandoned (and may be reusing r for already).
func (r *Replies) keep(i int, resp *Response, aliased bool) *Response {
	dst := &r.resps[i]
	*dst = *resp
	if aliased && resp.Value != nil {
		// Appending past the capacity moves later values to a new array;
		// the earlier ones keep pointing into the old one, still valid.
		start := len(r.vals)
		r.vals = append(r.vals, resp.Value...)
		dst.Value = r.vals[start:len(r.vals):len(r.vals)]
	}
	return dst
}
