//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces this process with a new run of its own program, with
// the same arguments and environ. The process keeps its PID, its place
// under its supervisor and its descriptors not marked close-on-exec
// (stdin, stdout, stderr and any others its parent passed: Go opens its
// own close-on-exec). It returns only on failure.
func reexec(environ []string) error {
	// On Linux /proc/self/exe still names the program if its file was
	// replaced since it started (an upgrade in place); systems without
	// /proc ask the runtime, which finds the path some other way.
	path := "/proc/self/exe"
	if _, err := os.Stat(path); err != nil {
		if path, err = os.Executable(); err != nil {
			return err
		}
	}
	// syscall.Exec first puts the open-files limit back to the one this
	// process inherited (the runtime raised it at start); if the exec
	// fails, raise it again, or the node would refuse connections past
	// the inherited limit (often 1,024).
	var nofile syscall.Rlimit
	saved := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil
	err := syscall.Exec(path, os.Args, environ)
	if saved {
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nofile)
	}
	return err
}
