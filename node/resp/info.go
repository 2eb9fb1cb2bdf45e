package resp

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/starlingcache/starling/transport"
)

// INFO [section ...]: Redis's field names where the meaning matches, so
// dashboards and exporters read them; starling-only fields start with
// "starling_". Memory and stats are this node's; keyspace counts the whole
// cluster (summed over members); cluster lists the members this node sees.

func execInfo(c *conn, args [][]byte) {
	infoSections := [...]string{"server", "clients", "memory", "stats", "keyspace", "cluster"}
	want := make(map[string]bool, len(infoSections))
	if len(args) == 1 {
		for _, s := range infoSections {
			want[s] = true
		}
	}
	for _, a := range args[1:] {
		s := strings.ToLower(string(a))
		switch s {
		case "all", "everything", "default":
			for _, s := range infoSections {
				want[s] = true
			}
		default:
			want[s] = true
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !want[sec] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + strings.ToUpper(sec[:1]) + sec[1:] + "\r\n")
		switch sec {
		case "server":
			c.infoServer(&b)
		case "clients":
			c.infoClients(&b)
		case "memory":
			c.infoMemory(&b)
		case "stats":
			c.infoStats(&b)
		case "keyspace":
			c.infoKeyspace(&b)
		case "cluster":
			c.infoCluster(&b)
		}
	}
	c.wr.bulkString(b.String())
}

func field(b *strings.Builder, name string, value any) {
	s := fmt.Sprint(value)
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	b.WriteString(name)
	b.WriteByte(':')
	b.WriteString(s)
	b.WriteString("\r\n")
}

func (c *conn) infoServer(b *strings.Builder) {
	s := c.s
	up := time.Since(s.started)
	port := ""
	if a := s.Addr(); a != nil {
		_, port, _ = net.SplitHostPort(a.String())
	}
	field(b, "redis_version", redisCompatVersion)
	field(b, "starling_version", s.cfg.Version)
	field(b, "starling_node", s.cfg.NodeName)
	field(b, "redis_mode", "standalone")
	field(b, "os", runtime.GOOS)
	field(b, "arch_bits", strconv.IntSize)
	field(b, "go_version", runtime.Version())
	field(b, "process_id", os.Getpid())
	field(b, "run_id", s.runID)
	field(b, "tcp_port", port)
	field(b, "uptime_in_seconds", int64(up.Seconds()))
	field(b, "uptime_in_days", int64(up.Hours()/24))
}

func (c *conn) infoClients(b *strings.Builder) {
	field(b, "connected_clients", c.s.ConnectedClients())
	field(b, "maxclients", c.s.cfg.MaxConns)
	field(b, "blocked_clients", 0)
}

func (c *conn) infoMemory(b *strings.Builder) {
	st := c.s.backend.Stats()
	field(b, "used_memory", st.Bytes)
	field(b, "used_memory_human", humanBytes(st.Bytes))
	field(b, "maxmemory", st.MaxMemory)
	field(b, "maxmemory_human", humanBytes(st.MaxMemory))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	field(b, "starling_process_heap_bytes", ms.HeapAlloc)
}

func (c *conn) infoStats(b *strings.Builder) {
	s := c.s
	st := s.backend.Stats()
	field(b, "total_connections_received", s.totalConns.Load())
	field(b, "total_commands_processed", s.totalCmds.Load()+c.ncmds)
	field(b, "rejected_connections", s.rejected.Load())
	field(b, "expired_keys", st.Expirations)
	field(b, "evicted_keys", st.Evictions)
	field(b, "keyspace_hits", st.Hits)
	field(b, "keyspace_misses", st.Misses)
	field(b, "starling_local_requests", st.Local)
	field(b, "starling_forwarded_requests", st.Forwarded)
}

func (c *conn) infoKeyspace(b *strings.Builder) {
	// Like Redis, a database without keys is not listed.
	if ks, err := c.clusterKeyspace(true); err == "" && ks.keys > 0 {
		b.WriteString("db0:keys=" + strconv.FormatInt(ks.keys, 10) +
			",expires=" + strconv.FormatInt(ks.expires, 10) +
			",avg_ttl=" + strconv.FormatInt(ks.avgTTL, 10) + "\r\n")
	}
}

func (c *conn) infoCluster(b *strings.Builder) {
	// cluster_enabled stays 0: starling routes every key itself, and a
	// client that saw 1 would switch to the Redis Cluster protocol.
	field(b, "cluster_enabled", 0)
	ms := c.s.backend.Members()
	field(b, "starling_cluster_members", len(ms))
	for i, m := range ms {
		field(b, "member"+strconv.Itoa(i), memberLine(m))
	}
}

func memberLine(m transport.Member) string {
	clean := strings.NewReplacer(",", "_", "=", "_")
	return "name=" + clean.Replace(m.Name) + ",data_addr=" + clean.Replace(m.DataAddr) +
		",gossip_addr=" + clean.Replace(m.GossipAddr) + ",state=" + clean.Replace(m.State)
}

// humanBytes formats n the way Redis's *_human fields do ("1.50M").
func humanBytes(n int64) string {
	f := float64(n)
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + "B"
	case n < 1<<20:
		return strconv.FormatFloat(f/(1<<10), 'f', 2, 64) + "K"
	case n < 1<<30:
		return strconv.FormatFloat(f/(1<<20), 'f', 2, 64) + "M"
	case n < 1<<40:
		return strconv.FormatFloat(f/(1<<30), 'f', 2, 64) + "G"
	}
	return strconv.FormatFloat(f/(1<<40), 'f', 2, 64) + "T"
}
