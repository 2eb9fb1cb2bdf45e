package node

import (
	"os"
	"strings"
	"testing"
)

func TestCgroupLimit(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	for name, tc := range map[string]struct {
		cgroup string
		files  map[string]string
		want   int64
	}{
		"v2, container namespace": {"0::/\n", map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}, 1 << 30},
		"v2, unlimited":           {"0::/\n", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0},
		"v2, a parent is lower": {"0::/system.slice/starling.service\n", map[string]string{
			"/sys/fs/cgroup/system.slice/starling.service/memory.max": "max\n",
			"/sys/fs/cgroup/system.slice/memory.max":                  "536870912\n",
		}, 512 << 20},
		"v2, the group is lower": {"0::/a/b\n", map[string]string{
			"/sys/fs/cgroup/a/b/memory.max": "104857600",
			"/sys/fs/cgroup/a/memory.max":   "536870912",
		}, 100 << 20},
		"v1, the group's path": {"4:memory:/process_api/x\n0::/\n", map[string]string{
			"/sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": "268435456\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes":               "9223372036854771712\n",
		}, 256 << 20},
		"v1, container mount at the root": {"5:cpuacct,memory:/docker/abc\n", map[string]string{
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n",
		}, 256 << 20},
		"v1, unlimited": {"4:memory:/\n", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, 0},
		"v1, an ancestor's limit": {"4:memory:/system.slice/starling.service\n", map[string]string{
			"/sys/fs/cgroup/memory/system.slice/starling.service/memory.limit_in_bytes": "9223372036854771712",
			"/sys/fs/cgroup/memory/system.slice/starling.service/memory.stat":           "cache 0\nrss 4096\nhierarchical_memory_limit 805306368\nhierarchical_memsw_limit 9223372036854771712\n",
		}, 768 << 20},
		"v1, no hierarchical limit": {"4:memory:/a\n", map[string]string{
			"/sys/fs/cgroup/memory/a/memory.stat": "cache 0\nhierarchical_memory_limit 9223372036854771712\n",
		}, 0},
		"nothing readable":  {"0::/\n", nil, 0},
		"malformed entries": {"garbage\n4:memory\n0::/\n", map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, 0},
		"memsw is not memory": {"4:memsw:/x\n", map[string]string{
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456",
		}, 0},
	} {
		if got := cgroupLimit(strings.NewReader(tc.cgroup), files(tc.files)); got != tc.want {
			t.Errorf("%s: cgroupLimit = %d, want %d", name, got, tc.want)
		}
	}
}

// TestSystemMemory checks the live machine: the memory a node may use is
// positive and no more than the machine has.
func TestSystemMemory(t *testing.T) {
	m := systemMemory()
	if m <= 0 {
		t.Fatalf("systemMemory = %d", m)
	}
	if c := containerMemory(); c > 0 && m > c {
		t.Fatalf("systemMemory %d above the control group's limit %d", m, c)
	}
}
