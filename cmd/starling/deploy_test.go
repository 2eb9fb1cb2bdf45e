package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/starlingcache/starling/node"
)

// The deployment files under deploy/ cannot be run here (no cluster, no
// systemd as PID 1), so these tests check what can go wrong silently: YAML
// that does not parse, a variable or flag starling does not know, names
// and ports that do not match up, a grace period shorter than a leave.

// startEnvVars maps every STARLING_* variable `starling start` reads to its
// flag.
func startEnvVars() map[string]string {
	out := map[string]string{}
	for _, f := range withConfigFile(startCommand()).Flags {
		for _, ev := range envVarsOf(f) {
			out[ev] = f.Names()[0]
		}
	}
	return out
}

type k8sDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

type k8sService struct {
	Spec struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			Protocol   string `yaml:"protocol"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sStatefulSet struct {
	Spec struct {
		ServiceName string `yaml:"serviceName"`
		Replicas    int    `yaml:"replicas"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				EnableServiceLinks            *bool          `yaml:"enableServiceLinks"`
				Containers                    []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// readManifest splits a multi-document YAML file into its objects, raw,
// keyed by kind and name.
func readManifest(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj == nil {
			continue // a document of comments only
		}
		raw, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var doc k8sDoc
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.APIVersion == "" || doc.Kind == "" || doc.Metadata.Name == "" {
			t.Fatalf("%s: an object without apiVersion, kind or name:\n%s", path, raw)
		}
		key := doc.Kind + "/" + doc.Metadata.Name
		if _, dup := out[key]; dup {
			t.Fatalf("%s: %s twice", path, key)
		}
		out[key] = raw
	}
	return out
}

func decodeAs[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestKubernetesManifest(t *testing.T) {
	objs := readManifest(t, "../../deploy/kubernetes/starling.yaml")
	var ss k8sStatefulSet
	for key, raw := range objs {
		if strings.HasPrefix(key, "StatefulSet/") {
			ss = decodeAs[k8sStatefulSet](t, raw)
		}
	}
	if len(ss.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one StatefulSet with one container; objects: %v", slices.Sorted(maps.Keys(objs)))
	}
	pod := ss.Spec.Template.Spec
	c := pod.Containers[0]
	labels := ss.Spec.Template.Metadata.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(ss.Spec.Selector.MatchLabels) {
		t.Errorf("the StatefulSet's selector %v does not select its pods %v", ss.Spec.Selector.MatchLabels, labels)
	}

	// The headless Service governs the StatefulSet and lists pods before
	// they are ready, with gossip on TCP and UDP.
	raw, ok := objs["Service/"+ss.Spec.ServiceName]
	if !ok {
		t.Fatalf("no Service %q, the StatefulSet's serviceName", ss.Spec.ServiceName)
	}
	headless := decodeAs[k8sService](t, raw)
	if headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses || !matches(headless.Spec.Selector) {
		t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v, selector %v; want a headless Service listing unready pods",
			ss.Spec.ServiceName, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses, headless.Spec.Selector)
	}
	gossipProtos := map[string]bool{}
	for _, p := range headless.Spec.Ports {
		if p.Port == 7946 {
			gossipProtos[cmpOr(p.Protocol, "TCP")] = true
		}
	}
	if !gossipProtos["TCP"] || !gossipProtos["UDP"] {
		t.Errorf("the headless Service carries gossip over %v, want TCP and UDP", gossipProtos)
	}

	// Every variable is one starling reads; the values parse as its
	// flags would.
	known := startEnvVars()
	env := map[string]string{}
	fake := map[string]string{"POD_NAME": "starling-0", "POD_IP": "10.1.2.3"}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	secrets := map[string]bool{}
	for _, e := range c.Env {
		v := ref.ReplaceAllStringFunc(e.Value, func(m string) string { return fake[m[2:len(m)-1]] })
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secrets[e.Name] = true
			v = "0123456789abcdef0123456789abcdef" // long enough for any secret
		}
		if !strings.HasPrefix(e.Name, "STARLING_") {
			continue
		}
		env[e.Name] = v
		if _, ok := known[e.Name]; !ok {
			t.Errorf("%s is not a variable `starling start` reads", e.Name)
		}
	}
	for _, name := range []string{"STARLING_CLUSTER_SECRET", "STARLING_GOSSIP_KEY", "STARLING_REQUIREPASS"} {
		if !secrets[name] {
			t.Errorf("%s does not come from a Secret", name)
		}
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks is not false: Services would inject STARLING_* variables")
	}
	clearStarlingEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmdArgs := c.Args
	if len(cmdArgs) == 0 || cmdArgs[0] != "start" {
		t.Fatalf("container args %v, want start ...", cmdArgs)
	}
	parsed, out, err := runStartApp(t, cmdArgs[1:]...)
	if err != nil {
		t.Fatalf("the pod's settings do not parse: %v\n%s", err, out)
	}
	if parsed.String("name") != "starling-0" || parsed.String("advertise") != "10.1.2.3" {
		t.Errorf("name %q, advertise %q: want the pod's name and IP", parsed.String("name"), parsed.String("advertise"))
	}
	// Every node's seed is the headless Service's DNS name.
	join := splitList(parsed.StringSlice("join"))
	if len(join) != 1 {
		t.Fatalf("join %v, want the headless Service alone", join)
	}
	if host, _, err := net.SplitHostPort(join[0]); err != nil || strings.Split(host, ".")[0] != ss.Spec.ServiceName {
		t.Errorf("join %q, want the headless Service %s", join[0], ss.Spec.ServiceName)
	}

	// Probes hit the admin HTTP server on the port --http-addr binds.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, pr := range map[string]*k8sProbe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != name {
			t.Errorf("no HTTP probe of %s", name)
			continue
		}
		_, port, _ := net.SplitHostPort(env["STARLING_HTTP_ADDR"])
		if p, ok := ports[pr.HTTPGet.Port]; !ok || strconv.Itoa(p) != port {
			t.Errorf("probe of %s on port %q (%d), but --http-addr is %q", name, pr.HTTPGet.Port, p, env["STARLING_HTTP_ADDR"])
		}
	}

	// The process the node holds itself to (max-memory + 1/3 + 64 MiB, the
	// formula in node.DefaultGC) fits under the container's limit with the
	// tenth of room the node would keep itself.
	limit := k8sQuantity(t, c.Resources.Limits["memory"])
	maxMem := limit / 4 // the default under a control group's limit
	if s := parsed.String("max-memory"); s != "" {
		if maxMem, err = node.ParseSize(s); err != nil {
			t.Fatalf("--max-memory %q: %v", s, err)
		}
	}
	if gc := maxMem + maxMem/3 + 64<<20; gc > limit/10*9 {
		t.Errorf("--max-memory %s needs %s with the garbage collector's room, over 90%% of the container's %s",
			node.FormatSize(maxMem), node.FormatSize(gc), node.FormatSize(limit))
	}

	// SIGTERM's hand-off must finish before SIGKILL.
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	if leave := parsed.Duration("leave-timeout"); grace <= leave {
		t.Errorf("terminationGracePeriodSeconds %v is not above --leave-timeout %v", grace, leave)
	}
}

// k8sQuantity parses a Kubernetes memory quantity: a number of bytes
// with an optional binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix.
func k8sQuantity(t *testing.T, q string) int64 {
	t.Helper()
	if q == "" {
		t.Fatal("the container has no memory limit")
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			q, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("memory limit %q: not a quantity this test reads", q)
	}
	return n * mult
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// The unit starts a node from the example config, reads secrets from an
// EnvironmentFile, and lets a leave finish before SIGKILL.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("../../deploy/systemd/starling.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not KEY=value: %q", line)
		}
		keys[k] = append(keys[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	exec := strings.Fields(strings.Join(keys["ExecStart"], " "))
	if len(exec) != 4 || exec[1] != "start" || exec[2] != "--config" {
		t.Fatalf("ExecStart %v, want BINARY start --config FILE", exec)
	}
	if len(keys["EnvironmentFile"]) != 1 {
		t.Errorf("no EnvironmentFile for the secrets")
	}
	for _, k := range []string{"DynamicUser", "NoNewPrivileges"} {
		if !slices.Equal(keys[k], []string{"yes"}) {
			t.Errorf("%s = %v, want yes", k, keys[k])
		}
	}
	if len(keys["LimitNOFILE"]) != 1 {
		t.Errorf("no LimitNOFILE")
	}
	clearStarlingEnv(t)
	c, out, err := runStartApp(t, "--config", "../../deploy/systemd/starling.yaml")
	if err != nil {
		t.Fatalf("example config: %v\n%s", err, out)
	}
	if c.String("name") == "" || len(splitList(c.StringSlice("join"))) == 0 {
		t.Errorf("the example config sets no name or no seeds")
	}
	stop, err := time.ParseDuration(strings.Join(keys["TimeoutStopSec"], ""))
	if err != nil || stop <= c.Duration("leave-timeout") {
		t.Errorf("TimeoutStopSec %v (%v) is not above --leave-timeout %v", keys["TimeoutStopSec"], err, c.Duration("leave-timeout"))
	}
}
