//go:build !unix

package main

import "errors"

// reexec is not available here: the node runs with Go's default.
func reexec([]string) error {
	return errors.New("not supported on this system")
}
