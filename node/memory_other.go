//go:build !linux

package node

// Elsewhere than Linux, neither the machine's memory nor a limit is read:
// DefaultMaxMemory falls back to 256 MiB and DefaultGC sets no cap.

func systemMemory() int64 { return 0 }

func containerMemory() int64 { return 0 }
