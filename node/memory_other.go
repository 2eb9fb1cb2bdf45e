//go:build !linux

package node

func systemMemory() int64 { return 0 }

func containerMemory() int64 { return 0 }
