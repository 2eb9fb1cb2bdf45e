package transport

import (
	"context"
	"errors"
	"fmt"
)

// Transport failures. Client.Call returns them (wrapped with the peer address
// and the underlying cause) when no Response could be obtained; they never
// travel inside a Response, whose outcomes are the Code errors in message.go.
var (
	// ErrUnreachable reports that the peer could not be reached: the dial was
	// refused, failed or timed out, or the connection broke. Callers fail
	// over to a replica on errors.Is(err, ErrUnreachable); it is also true for
	// ErrConnLost.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrConnLost reports that the connection broke while the request was in
	// flight, so the peer may or may not have applied it — unless the
	// error is also ErrNotSent (every connection tried was found broken
	// before the request could be queued on it, or the connection broke
	// before it had written the request whole). It wraps ErrUnreachable:
	// failover logic need test only that.
	ErrConnLost = fmt.Errorf("connection lost: %w", ErrUnreachable)
	// ErrNotSent marks a failure that came before the whole request was
	// written — no connection could be made or picked in time, the request
	// was too large, the client was closed, or the connection broke with
	// the request still queued on it or cut short by a failed write — so
	// the peer cannot have served it, and even a request that must not be
	// applied twice may be sent elsewhere. It is always found alongside
	// the error that says why (errors.Is(err, ErrUnreachable), ErrTimeout,
	// and so on). Its absence promises nothing: a request in a write still
	// in progress when its connection broke is not marked, though that
	// write may have failed.
	ErrNotSent = errors.New("request not sent")
	// ErrTimeout reports that a call's deadline (the context's, the bound
	// given to CallWithin or StartWithin, or Config.CallTimeout when the
	// context has none) passed before the reply came. errors.Is(err, context.DeadlineExceeded) is true for it too, and
	// it is a net.Error whose Timeout() is true.
	ErrTimeout error = timeoutError{}
	// ErrClosed reports a call on, or cut short by, a closed Client.
	ErrClosed = errors.New("transport client closed")
	// ErrServerClosed is returned by Server.Serve after Shutdown or Close, so
	// the caller can tell an orderly stop from a listener failure.
	ErrServerClosed = errors.New("transport server closed")
	// ErrFrameTooLarge reports a frame longer than Config.MaxFrameSize. An
	// oversized outgoing request fails only its own call; an oversized
	// incoming frame closes the connection that carried it.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformed reports bytes that are not a valid frame or message. The
	// connection that carried them is closed, except that the server answers
	// CodeBadRequest and carries on when it could still read the request ID.
	ErrMalformed = errors.New("malformed message")
	// ErrInvalidConfig wraps every problem Config.Validate finds.
	ErrInvalidConfig = errors.New("invalid transport config")
	// ErrAuth reports that a connection was refused at its start, before
	// any request on it was served: a peer refused this side's credentials
	// (Config.Secret missing or wrong, TLS client certificate missing or
	// untrusted), failed to prove its own (wrong secret, untrusted server
	// certificate), or the two ends disagree on whether to use TLS or a
	// secret at all. The request was not applied.
	//
	// It deliberately does not match ErrUnreachable: the peer is alive and
	// answering, so it must not be marked down or failed over from as if it
	// had crashed. The cause is a configuration mismatch that retrying or
	// another replica will not fix (usually every peer refuses alike), and
	// hiding it behind failover would turn a loud misconfiguration into a
	// quiet, partial outage. Callers that prefer availability can test
	// errors.Is(err, ErrAuth) and fail over themselves.
	ErrAuth = errors.New("authentication failed")
)

// timeoutError is ErrTimeout's type. It matches context.DeadlineExceeded
// under errors.Is and satisfies net.Error, so code written against either
// convention recognises a transport timeout.
type timeoutError struct{}

func (timeoutError) Error() string   { return "call timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// Is makes errors.Is(ErrTimeout, context.DeadlineExceeded) true.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unreached reports whether request i of a batch that failed with err,
// of which the first sent may have reached the peer (Flight.Sent; 1 for
// a lone call), certainly never reached a peer that could have taken it:
// it did not leave whole (past sent, or err is ErrNotSent), and not for
// lack of time — a peer that only made it wait for a dial, a handshake, a
// free slot or room in its socket may be alive and busy with the same
// keys (so a dial that timed out does not count, only one refused or
// reset). A request that must not be applied twice may then be sent to
// another replica; any other failure leaves its outcome unknown.
func Unreached(err error, i, sent int) bool {
	if err == nil || errors.Is(err, ErrTimeout) || isTimeout(err) {
		return false
	}
	return i >= sent || errors.Is(err, ErrNotSent)
}

// notSentError is an error from before the request was handed to a
// connection: errors.Is finds ErrNotSent in it, as well as everything in
// the error it marks, whose message it keeps.
type notSentError struct{ err error }

func (e notSentError) Error() string   { return e.err.Error() }
func (e notSentError) Unwrap() []error { return []error{ErrNotSent, e.err} }

// unsent marks err (nil stays nil) as coming from before the request was
// handed to a connection.
func unsent(err error) error {
	if err == nil || errors.Is(err, ErrNotSent) {
		return err
	}
	return notSentError{err}
}
