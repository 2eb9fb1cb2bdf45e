package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPresetsAreValid(t *testing.T) {
	for name, cfg := range map[string]Config{"lan": DefaultLANConfig(), "fast": DefaultFastConfig()} {
		cfg.Name = "n"
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s preset: %v", name, err)
		}
		if cfg.DeadNodeReclaimTime <= 0 {
			t.Errorf("%s preset: DeadNodeReclaimTime %v, a restarted node could never take its name back", name, cfg.DeadNodeReclaimTime)
		}
	}
	if err := (&Config{}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("zero Config: %v, want ErrInvalidConfig", err)
	}
}

func TestFastPresetTimings(t *testing.T) {
	c := DefaultFastConfig()
	if c.ProbeInterval != 100*time.Millisecond || c.ProbeTimeout != 50*time.Millisecond ||
		c.GossipInterval != 20*time.Millisecond || c.SuspicionMult != 2 || c.PushPullInterval != time.Second {
		t.Errorf("fast preset timings changed: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"ok", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "Name is required"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 256) }, "limit 255"},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, "must be an IP"},
		{"bind bad port", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, "bad port"},
		{"bind ipv4 any", func(c *Config) { c.BindAddr = "0.0.0.0:7946" }, ""},
		{"bind ipv6 any", func(c *Config) { c.BindAddr = "[::]:7946" }, "set AdvertiseAddr"},
		{"bind ipv6 any advertised", func(c *Config) { c.BindAddr = "[::]:0"; c.AdvertiseAddr = "fd00::1" }, ""},
		{"advertise host", func(c *Config) { c.AdvertiseAddr = "10.1.2.3" }, ""},
		{"advertise name and port", func(c *Config) { c.AdvertiseAddr = "node1.example:7000" }, ""},
		{"advertise ipv6 bracketed", func(c *Config) { c.AdvertiseAddr = "[fd00::1]" }, ""},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "10.1.2.3:0" }, "port 0"},
		{"advertise any", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "unspecified"},
		{"seed ok", func(c *Config) { c.Seeds = []string{"10.0.0.1:7946", "seeds.example:7946"} }, ""},
		{"seed without port", func(c *Config) { c.Seeds = []string{"10.0.0.1"} }, "seed"},
		{"seed port 0", func(c *Config) { c.Seeds = []string{"10.0.0.1:0"} }, "port 0"},
		{"meta bad addr", func(c *Config) { c.Meta.DataAddr = "nohostport" }, "DataAddr"},
		{"meta too big", func(c *Config) { c.Meta.HTTPAddr = strings.Repeat("h", 600) + ":1" }, "too large"},
		{"label too long", func(c *Config) { c.Label = strings.Repeat("l", 256) }, "Label"},
		{"zero probe", func(c *Config) { c.ProbeInterval = 0 }, "ProbeInterval must be positive"},
		{"timeout over interval", func(c *Config) { c.ProbeTimeout = 2 * c.ProbeInterval }, "exceeds ProbeInterval"},
		{"negative push/pull", func(c *Config) { c.PushPullInterval = -1 }, "PushPullInterval"},
		{"push/pull off", func(c *Config) { c.PushPullInterval = 0 }, ""},
		{"rejoin off", func(c *Config) { c.RejoinInterval = 0 }, ""},
		{"retry max below min", func(c *Config) { c.JoinRetryMax = c.JoinRetryMin / 2 }, "JoinRetryMax"},
		{"zero suspicion", func(c *Config) { c.SuspicionMult = 0 }, "SuspicionMult"},
		{"zero gossip nodes", func(c *Config) { c.GossipNodes = 0 }, "GossipNodes"},
		{"zero broadcast timeout", func(c *Config) { c.BroadcastTimeout = 0 }, "BroadcastTimeout"},
		{"repair off", func(c *Config) { c.RepairDelay = 0 }, ""},
		{"negative repair delay", func(c *Config) { c.RepairDelay = -1 }, "RepairDelay"},
		{"key 16", func(c *Config) { c.SecretKey = make(Key, 16) }, ""},
		{"key 24 and extra 32", func(c *Config) { c.SecretKey = make(Key, 24); c.ExtraKeys = []Key{make(Key, 32)} }, ""},
		{"empty key is no key", func(c *Config) { c.SecretKey = Key{} }, ""},
		{"key 20", func(c *Config) { c.SecretKey = make(Key, 20) }, "SecretKey"},
		{"extra key 8", func(c *Config) { c.SecretKey = make(Key, 16); c.ExtraKeys = []Key{make(Key, 16), make(Key, 8)} }, "ExtraKeys[1]"},
		{"extra without primary", func(c *Config) { c.ExtraKeys = []Key{make(Key, 16)} }, "require a SecretKey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultFastConfig()
			cfg.Name = "n"
			cfg.Meta = Meta{DataAddr: "127.0.0.1:7001"}
			tc.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate accepted it, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && (!strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidConfig)):
				t.Fatalf("Validate = %v, want ErrInvalidConfig containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultFastConfig()
	cfg.BindAddr = "nope"
	cfg.GossipNodes = 0
	err := cfg.Validate()
	for _, want := range []string{"Name is required", "BindAddr", "GossipNodes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	if _, err := Start(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start(Config{}) = %v, want ErrInvalidConfig", err)
	}
}
