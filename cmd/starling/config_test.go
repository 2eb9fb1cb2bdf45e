package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// clearStarlingEnv unsets every STARLING_* variable the start command
// reads, for this test only, so the developer's environment cannot leak in.
func clearStarlingEnv(t *testing.T) {
	t.Helper()
	for _, f := range withConfigFile(startCommand()).Flags {
		for _, ev := range envVarsOf(f) {
			t.Setenv(ev, "") // restores the old value at cleanup
			os.Unsetenv(ev)
		}
	}
}

func envVarsOf(f cli.Flag) []string {
	if df, ok := f.(cli.DocGenerationFlag); ok {
		return df.GetEnvVars()
	}
	return nil
}

// runStartApp runs `starling start args...` with the config file support
// main installs, but an action that only records the parsed context, so no
// node starts. It returns that context (nil if the action did not run),
// stdout+stderr and the error.
func runStartApp(t *testing.T, args ...string) (*cli.Context, string, error) {
	t.Helper()
	var ran *cli.Context
	cmd := withConfigFile(startCommand())
	cmd.Action = func(c *cli.Context) error { ran = c; return nil }
	var out bytes.Buffer
	app := &cli.App{
		Name:           "starling",
		Commands:       []*cli.Command{cmd},
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"starling", "start"}, args...))
	return ran, out.String(), err
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "starling.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every start flag can be set from the environment, so containers and
// systemd units never need secrets or settings on the command line; and
// no two flags share a variable.
func TestEveryStartFlagHasAnEnvVar(t *testing.T) {
	seen := map[string]string{}
	for _, f := range withConfigFile(startCommand()).Flags {
		name := f.Names()[0]
		evs := envVarsOf(f)
		if !slices.ContainsFunc(evs, func(ev string) bool { return strings.HasPrefix(ev, "STARLING_") }) {
			t.Errorf("--%s has no STARLING_* environment variable (EnvVars %v)", name, evs)
		}
		for _, ev := range evs {
			if other, dup := seen[ev]; dup {
				t.Errorf("--%s and --%s share %s", other, name, ev)
			}
			seen[ev] = name
		}
	}
}

// Precedence, for a string, a list, a number, a switch and a duration:
// command line > STARLING_* variable > config file > default.
func TestConfigFilePrecedence(t *testing.T) {
	clearStarlingEnv(t)
	path := writeConfig(t, `
# every layer sets advertise; all but the command line set resp-addr; ...
name: from-file
advertise: file.example
resp-addr: 127.0.0.1:6000
max-key-size: 1KiB
join: [file-a:7946, file-b:7946]
replicas: 3
enable-flushall: true
leave-timeout: 45s
log-level: warn
`)
	t.Setenv("STARLING_ADVERTISE", "env.example")
	t.Setenv("STARLING_RESP_ADDR", "127.0.0.1:6001")
	t.Setenv("STARLING_LOG_LEVEL", "error")
	c, out, err := runStartApp(t, "--config", path, "--advertise", "flag.example", "--join", "flag-a:7946", "--log-level", "debug")
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	for _, tc := range []struct{ flag, got, want string }{
		{"advertise", c.String("advertise"), "flag.example"}, // flag > env > file
		{"log-level", c.String("log-level"), "debug"},        // flag > env > file
		{"resp-addr", c.String("resp-addr"), "127.0.0.1:6001"},
		{"name", c.String("name"), "from-file"}, // a required flag, from the file
		{"max-key-size", c.String("max-key-size"), "1KiB"},
		{"max-value-size", c.String("max-value-size"), "1MiB"}, // default
		{"eviction", c.String("eviction"), "s3fifo"},           // default
		{"join", strings.Join(c.StringSlice("join"), ","), "flag-a:7946"},
	} {
		if tc.got != tc.want {
			t.Errorf("--%s = %q, want %q", tc.flag, tc.got, tc.want)
		}
	}
	if c.Int("replicas") != 3 || !c.Bool("enable-flushall") || c.Duration("leave-timeout") != 45*time.Second {
		t.Errorf("from the file: replicas %d, enable-flushall %v, leave-timeout %v; want 3, true, 45s",
			c.Int("replicas"), c.Bool("enable-flushall"), c.Duration("leave-timeout"))
	}

	// The environment beats the file for a list and a number too, and
	// STARLING_CONFIG names the file.
	t.Setenv("STARLING_CONFIG", path)
	t.Setenv("STARLING_JOIN", "env-a:7946,env-b:7946")
	t.Setenv("STARLING_REPLICAS", "1")
	if c, out, err = runStartApp(t); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if got := strings.Join(c.StringSlice("join"), ","); got != "env-a:7946,env-b:7946" || c.Int("replicas") != 1 {
		t.Errorf("join %q, replicas %d; want the environment's env-a:7946,env-b:7946 and 1", got, c.Int("replicas"))
	}
	if c.String("advertise") != "env.example" {
		t.Errorf("advertise = %q, want the environment's", c.String("advertise"))
	}

	// A variable set to "" still beats the file, whatever the flag's type:
	// a string is then empty, a number or duration its default.
	t.Setenv("STARLING_RESP_ADDR", "")
	t.Setenv("STARLING_REPLICAS", "")
	t.Setenv("STARLING_LEAVE_TIMEOUT", "")
	t.Setenv("STARLING_ENABLE_FLUSHALL", "")
	if c, out, err = runStartApp(t); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if c.String("resp-addr") != "" || c.Int("replicas") != 2 || c.Duration("leave-timeout") != 30*time.Second || c.Bool("enable-flushall") {
		t.Errorf("empty variables: resp-addr %q, replicas %d, leave-timeout %v, enable-flushall %v; want empty and the defaults 2, 30s, false",
			c.String("resp-addr"), c.Int("replicas"), c.Duration("leave-timeout"), c.Bool("enable-flushall"))
	}
}

// A list takes either YAML form, or the command line's comma-separated
// string; a flag that takes one value refuses a list.
func TestConfigFileLists(t *testing.T) {
	clearStarlingEnv(t)
	for name, tc := range map[string]struct{ yaml, want string }{
		"flow":   {"join: [a:7946, b:7946]", "a:7946,b:7946"},
		"block":  {"join:\n  - a:7946\n  - b:7946\n  - c:7946", "a:7946,b:7946,c:7946"},
		"string": {"join: a:7946,b:7946", "a:7946,b:7946"},
		"one":    {"join: seeds.starling.svc:7946", "seeds.starling.svc:7946"},
		"empty":  {"join: []", ""},
	} {
		c, out, err := runStartApp(t, "--name", "n1", "--config", writeConfig(t, tc.yaml))
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
			continue
		}
		if got := strings.Join(splitList(c.StringSlice("join")), ","); got != tc.want {
			t.Errorf("%s: join = %q, want %q", name, got, tc.want)
		}
	}
}

// Every mistake in the file is a usage error (exit 2) that names the file
// and the key, and no node starts.
func TestConfigFileErrors(t *testing.T) {
	clearStarlingEnv(t)
	for name, tc := range map[string]struct {
		yaml string
		want []string // in the error message, besides the file's path
	}{
		"unknown key":      {"name: n1\nmax-memroy: 2GiB\n", []string{`unknown key "max-memroy"`, "--help"}},
		"underscores":      {"max_memory: 2GiB\n", []string{`unknown key "max_memory"`, `did you mean "max-memory"`}},
		"config in config": {"config: other.yaml\n", []string{`unknown key "config"`}},
		"help":             {"help: true\n", []string{`unknown key "help"`}},
		"bad yaml":         {"name: n1\njoin: [a:7946\n", []string{"[2:7]", "not found"}},
		"not a mapping":    {"- name\n- n1\n", []string{"[1:1]", "mapping is expected"}},
		"duplicate key":    {"name: n1\nname: n2\n", []string{"[2:1]", `"name" already defined`}},
		"list for one":     {"replicas: [1, 2]\n", []string{"replicas", "takes one value"}},
		"mapping":          {"name:\n  first: n1\n", []string{"name", "mapping"}},
		"no value":         {"max-memory:\n", []string{"max-memory", "no value"}},
		"bad number":       {"replicas: two\n", []string{"replicas", `invalid value "two"`}},
		"bad duration":     {"leave-timeout: 30\n", []string{"leave-timeout", `invalid value "30"`, "duration"}},
		"bad switch":       {"enable-flushall: maybe\n", []string{"enable-flushall", `invalid value "maybe"`, "true or false"}},
	} {
		path := writeConfig(t, tc.yaml)
		ran, out, err := runStartApp(t, "--name", "n1", "--config", path)
		if ran != nil || err == nil {
			t.Errorf("%s: start ran (err %v)", name, err)
			continue
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit code %d, want %d", name, code, exitUsage)
		}
		for _, w := range append(tc.want, path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q\n%s", name, err, w, out)
			}
		}
	}

	// A file that does not exist.
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, _, err := runStartApp(t, "--name", "n1", "--config", missing); exitCode(err) != exitUsage || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v (exit %d)", err, exitCode(err))
	}
}

// Without --name anywhere, the message (and exit code, through main) is
// cli's own, as before config files existed; with a file, it says where
// the name could have come from.
func TestConfigFileRequiredFlag(t *testing.T) {
	clearStarlingEnv(t)
	ran, out, err := runStartApp(t)
	if ran != nil || err == nil || err.Error() != `Required flag "name" not set` {
		t.Fatalf("start without --name: ran %v, err %v", ran != nil, err)
	}
	if exitCode(err) != -1 { // main maps a plain error to exitUsage
		t.Errorf("exit code %d, want a plain error", exitCode(err))
	}
	if !strings.Contains(out, "USAGE:") || !strings.Contains(out, "--config value") {
		t.Errorf("no help before the error, or no --config in it:\n%s", out)
	}
	path := writeConfig(t, "replicas: 1\n")
	if _, _, err := runStartApp(t, "--config", path); err == nil || !strings.Contains(err.Error(), `Required flag "name" not set`) || !strings.Contains(err.Error(), path) {
		t.Errorf("start with a file but no name: %v", err)
	}
	t.Setenv("STARLING_NAME", "env-name")
	if c, out, err := runStartApp(t, "--config", path); err != nil || c.String("name") != "env-name" {
		t.Errorf("name from the environment: %v\n%s", err, out)
	}
}
