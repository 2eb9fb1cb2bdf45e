package transport

// chunk hands out decoded Requests or Responses allocated chunkLen at a
// time: one allocation for many small messages on a busy connection. An
// element belongs to whoever it is handed to and is never reused; a chunk
// lives until the last of its elements is unreachable, and with it what
// they point to. So a message decoded from a frame of its own (owned:
// larger than the read buffer, its value aliasing the frame) is allocated
// alone: one message kept long must not keep its neighbours' big frames
// alive. A chunk belongs to one read loop.
type chunk[T any] []T

const chunkLen = 32

func (c *chunk[T]) next(owned bool) *T {
	if owned {
		return new(T)
	}
	if len(*c) == 0 {
		*c = make([]T, chunkLen)
	}
	r := &(*c)[0]
	*c = (*c)[1:]
	return r
}
