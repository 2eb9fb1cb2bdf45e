//go:build unix

package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// reexec replaces this process with a new run of its own program, with
// the same arguments and environ. The process keeps its PID, its place
// under its supervisor and its descriptors not marked close-on-exec
// (stdin, stdout, stderr and any others its parent passed: Go opens its
// own close-on-exec). It returns only on failure.
func reexec(environ []string) error {
	path, err := programPath()
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

// programPath returns the file to execute again. The kernel names a
// process after the file executed (what ps, top and pgrep show), so it is
// the path this run was started by where that still names this program:
// not /proc/self/exe, which would name the node "exe", nor the target of
// a symbolic link such as /usr/local/bin/starling, which would name it
// after the versioned file the link points to.
func programPath() (string, error) {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		}
	}
	self, err1 := os.Stat("/proc/self/exe")
	started, err2 := os.Stat(arg0)
	if err1 == nil && err2 == nil && os.SameFile(self, started) {
		return arg0, nil
	}
	return os.Executable()
}
