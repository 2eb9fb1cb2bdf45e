//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces this process with a new run of its own program, with
// the same arguments and environ. The process keeps its PID, open
// descriptors and place under its supervisor. It returns only on failure.
func reexec(environ []string) error {
	// /proc/self/exe still names the program if its file was replaced
	// since it started (an upgrade in place); elsewhere ask the runtime.
	path := "/proc/self/exe"
	if _, err := os.Stat(path); err != nil {
		if path, err = os.Executable(); err != nil {
			return err
		}
	}
	return syscall.Exec(path, os.Args, environ)
}
