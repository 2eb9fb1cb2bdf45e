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
	// The program's own path, not /proc/self/exe: the kernel names the
	// process after the file executed (what ps, top and pgrep show), and
	// "exe" would hide the node from `pkill starling`.
	path, err := os.Executable()
	if err != nil {
		return err
	}
	// syscall.Exec first puts the open-files limit back to the one this
	// process inherited (the runtime raised it at start); if the exec
	// fails, raise it again, or the node would refuse connections past
	// the inherited limit (often 1,024).
	var nofile syscall.Rlimit
	saved := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil
	err = syscall.Exec(path, os.Args, environ)
	if saved {
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nofile)
	}
	return err
}
