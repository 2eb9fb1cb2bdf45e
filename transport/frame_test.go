package transport

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// frame builds one frame with the given kind and body.
func frame(kind frameKind, body []byte) []byte {
	b := appendFrameHeader(nil, kind)
	b = append(b, body...)
	if !finishFrame(b, 0, maxFrameLimit) {
		panic("frame too large")
	}
	return b
}

func requestFrame(r *Request) []byte {
	return frame(kindRequest, appendRequest(nil, r))
}

func TestFrameReaderSplitsStream(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 3*bufferSize) // larger than the read buffer
	var stream []byte
	stream = append(stream, requestFrame(&Request{ID: 1, Op: OpGet, Key: "a"})...)
	stream = append(stream, requestFrame(&Request{ID: 2, Op: OpSet, Key: "b", Value: big})...)
	stream = append(stream, frame(200, []byte("future kind"))...)
	stream = append(stream, requestFrame(&Request{ID: 3, Op: OpPing})...)

	fr := newFrameReader(bytes.NewReader(stream), MinFrameSize)
	var ids []uint64
	for {
		kind, body, owned, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if kind == 200 {
			if string(body) != "future kind" {
				t.Fatalf("kind 200 body %q", body)
			}
			continue
		}
		var r Request
		if err := decodeRequest(body, &r, owned, nil); err != nil {
			t.Fatal(err)
		}
		if r.ID == 2 && (!owned || !bytes.Equal(r.Value, big)) {
			t.Fatalf("big frame: owned=%v, value intact=%v", owned, bytes.Equal(r.Value, big))
		}
		ids = append(ids, r.ID)
	}
	if len(ids) != 3 || ids[0] != 1 || ids[1] != 2 || ids[2] != 3 {
		t.Fatalf("ids = %v", ids)
	}
}

func TestFrameReaderErrors(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"4 GiB header", []byte{0xff, 0xff, 0xff, 0xff, byte(kindRequest)}, ErrFrameTooLarge},
		{"just over the limit", frame(kindRequest, make([]byte, MinFrameSize+1)), ErrFrameTooLarge},
		{"kind zero", []byte{0, 0, 0, 1, 0, 0x80}, ErrMalformed},
		{"truncated header", []byte{0, 0, 0}, io.ErrUnexpectedEOF},
		{"truncated small body", []byte{0, 0, 0, 9, 1, 0x80}, io.ErrUnexpectedEOF},
		{"truncated big body", append([]byte{0, 0x10, 0, 0, 1}, make([]byte, 100000)...), io.ErrUnexpectedEOF},
		{"nothing", nil, io.EOF},
		{"RESP instead", []byte("*1\r\n$4\r\nPING\r\n"), ErrFrameTooLarge},
	}
	for _, tc := range cases {
		fr := newFrameReader(bytes.NewReader(tc.input), MinFrameSize)
		_, _, _, err := fr.next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The limit itself is fine.
	fr := newFrameReader(bytes.NewReader(frame(kindRequest, make([]byte, MinFrameSize))), MinFrameSize)
	if _, body, _, err := fr.next(); err != nil || len(body) != MinFrameSize {
		t.Fatalf("frame at the limit: %d bytes, %v", len(body), err)
	}
}

// TestOversizedHeaderDoesNotAllocate: a header announcing 4 GiB is refused
// from the header alone.
func TestOversizedHeaderDoesNotAllocate(t *testing.T) {
	input := []byte{0xff, 0xff, 0xff, 0xff, byte(kindRequest), 1, 2, 3}
	r := bytes.NewReader(input)
	fr := newFrameReader(r, 8<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		r.Reset(input)
		fr.br.Reset(r)
		fr.broken = false
		if _, _, _, err := fr.next(); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing 100 oversized headers allocated %d bytes", grew)
	}
}

// TestStalledBigFrameAllocatesLittle: a peer that announces a big frame and
// sends only part of it costs memory in proportion to what it sent.
func TestStalledBigFrameAllocatesLittle(t *testing.T) {
	input := append([]byte{0, 0x7f, 0, 0, byte(kindRequest)}, make([]byte, 1000)...) // announces ~8 MiB
	fr := newFrameReader(bytes.NewReader(input), 8<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, _, err := fr.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("a stalled 8 MiB frame allocated %d bytes", grew)
	}
}

// FuzzReadFrame feeds arbitrary streams to the frame reader and decodes
// what it yields: no panic, no frame over the limit, only typed errors.
// Seeds live in testdata/fuzz/FuzzReadFrame.
func FuzzReadFrame(f *testing.F) {
	f.Add(requestFrame(&Request{ID: 1, Op: OpSet, Key: "k", Value: make([]byte, 40000)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		fr := newFrameReader(bytes.NewReader(b), limit)
		for range 1000 {
			kind, body, owned, err := fr.next()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF &&
					!errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if len(body) > limit {
				t.Fatalf("%d-byte body over the %d limit", len(body), limit)
			}
			switch kind {
			case kindRequest:
				var r Request
				if err := decodeRequest(body, &r, owned, nil); err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped decode error %v", err)
				}
			case kindResponse:
				var r Response
				if err := decodeResponse(body, &r, owned); err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped decode error %v", err)
				}
			}
			fr.buffered()
		}
	})
}

// chunkyReader hands out its data in pieces of pseudo-random sizes, so
// that frames straddle the reads.
type chunkyReader struct {
	data []byte
	seed uint32
}

func (r *chunkyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.seed = r.seed*1664525 + 1013904223
	n := min(len(p), len(r.data), 1+int(r.seed>>20)%(3*bufferSize/2))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// The bodies next returns in place stay intact for as long as buffered
// says the next frame is whole: a client connection's reader decodes
// replies in place and copies them out only once it says no (see
// deliverAll). Frames of every size, some larger than the buffer, arrive
// in reads that cut them anywhere.
func TestFrameBodiesStayWhileBuffered(t *testing.T) {
	var stream [][]byte
	var all []byte
	for i := range 400 {
		size := 1 + (i*7919)%300
		if i%37 == 0 {
			size = bufferSize + i // read into a buffer of its own
		}
		body := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a}, size/3+1)[:size]
		stream = append(stream, body)
		all = append(all, frame(kindResponse, body)...)
	}
	fr := newFrameReader(&chunkyReader{data: all, seed: 7}, MinFrameSize)
	var held [][]byte // bodies returned since buffered last said no
	var want [][]byte
	check := func(at int) {
		for j, b := range held {
			if !bytes.Equal(b, want[j]) {
				t.Fatalf("frame %d: an earlier body (%d of %d held) changed before buffered said no", at, j, len(held))
			}
		}
		held, want = held[:0], want[:0]
	}
	for i := range stream {
		if !fr.buffered() {
			check(i)
		}
		_, body, _, err := fr.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(body, stream[i]) {
			t.Fatalf("frame %d: body differs", i)
		}
		held, want = append(held, body), append(want, stream[i])
		// Every held body, checked again while buffered vouches.
		if fr.buffered() {
			for j, b := range held {
				if !bytes.Equal(b, want[j]) {
					t.Fatalf("frame %d: body %d of %d held changed while buffered", i, j, len(held))
				}
			}
		}
	}
	check(len(stream))
}
