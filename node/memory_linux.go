package node

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// systemMemory returns the memory this process may use, in bytes: the
// machine's physical memory, or its control group's limit where that is
// lower (a container, a systemd unit with MemoryMax=). 0 if neither can
// be read.
func systemMemory() int64 {
	var si syscall.Sysinfo_t
	var total int64
	if err := syscall.Sysinfo(&si); err == nil {
		total = int64(si.Totalram) * int64(si.Unit)
	}
	if c := containerMemory(); c > 0 && (total == 0 || c < total) {
		return c
	}
	return total
}

// containerMemory returns the memory limit of this process's control
// group, or 0 if there is none or it cannot be read. Go sizes nothing by
// it, so without this a node in a container would take a quarter of the
// host's memory as its default bound.
func containerMemory() int64 {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	defer f.Close()
	return cgroupLimit(f, os.ReadFile)
}

// cgroupLimit reads the memory limit for the control groups listed in
// procCgroup (the format of /proc/self/cgroup), reading the cgroup files
// through readFile: cgroup v2's memory.max, the lowest of the group's and
// its ancestors', or cgroup v1's memory.limit_in_bytes and memory.stat's
// hierarchical_memory_limit (which covers the ancestors). 0 means no limit.
func cgroupLimit(procCgroup io.Reader, readFile func(string) ([]byte, error)) int64 {
	sc := bufio.NewScanner(procCgroup)
	var best int64
	lower := func(v int64) {
		if v > 0 && (best == 0 || v < best) {
			best = v
		}
	}
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			// cgroup v2: the limit of the group and of every ancestor
			// applies. Inside a container's namespace the path is "/".
			for p := path.Clean(parts[2]); ; p = path.Dir(p) {
				lower(parseLimit(readFile(path.Join("/sys/fs/cgroup", p, "memory.max"))))
				if p == "/" || p == "." {
					break
				}
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			// cgroup v1: the memory controller's own hierarchy, mounted
			// at the group's path or, inside a container, at the root.
			// memory.stat's hierarchical_memory_limit is the lowest of
			// the group's and its ancestors' (a systemd slice's, say).
			for _, dir := range []string{path.Join("/sys/fs/cgroup/memory", path.Clean(parts[2])), "/sys/fs/cgroup/memory"} {
				lower(parseLimit(readFile(path.Join(dir, "memory.limit_in_bytes"))))
				lower(hierarchicalLimit(readFile(path.Join(dir, "memory.stat"))))
			}
		}
	}
	return best
}

// hierarchicalLimit returns the hierarchical_memory_limit line of a
// cgroup v1 memory.stat file, 0 for none.
func hierarchicalLimit(stat []byte, err error) int64 {
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(stat)) {
		if v, ok := strings.CutPrefix(line, "hierarchical_memory_limit "); ok {
			return parseLimit([]byte(v), nil)
		}
	}
	return 0
}

// parseLimit parses a cgroup memory limit file: a number of bytes, or
// "max" (v2) or a number near 2^63 (v1) for none, which it returns as 0.
func parseLimit(b []byte, err error) int64 {
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0
	}
	return v
}
