package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"

	"github.com/starlingcache/starling/node"
	"github.com/urfave/cli/v2"
)

// securityFlags are the flags that let a node or a client command into a
// secured cluster. Secrets come from a file or an environment variable:
// argv is visible to every user of the machine.
func securityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster-secret", Usage: "shared secret (16+ bytes) peers and clients must prove on the data port; prefer the env var or --cluster-secret-file", EnvVars: env("CLUSTER_SECRET")},
		&cli.StringFlag{Name: "cluster-secret-file", Usage: "file holding the cluster secret", EnvVars: env("CLUSTER_SECRET_FILE")},
		&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate for TLS on the data port (mutual TLS between nodes)", EnvVars: env("TLS_CERT")},
		&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert", EnvVars: env("TLS_KEY")},
		&cli.StringFlag{Name: "tls-ca", Usage: "PEM CA bundle that peer and client certificates must chain to", EnvVars: env("TLS_CA")},
	}
}

// security is what securityFlags resolve to.
type security struct {
	secret               []byte
	serverTLS, clientTLS *tls.Config
}

// loadSecurity reads the secret and TLS material the flags name.
func loadSecurity(c *cli.Context) (security, error) {
	var s security
	secret, err := secretFlag(c, "cluster-secret")
	if err != nil {
		return s, err
	}
	s.secret = []byte(secret)
	cert, key, ca := c.String("tls-cert"), c.String("tls-key"), c.String("tls-ca")
	if cert != "" || key != "" || ca != "" {
		if cert == "" || key == "" || ca == "" {
			return s, cli.Exit("--tls-cert, --tls-key and --tls-ca go together", exitUsage)
		}
		if s.serverTLS, s.clientTLS, err = node.LoadTLS(cert, key, ca); err != nil {
			return s, cli.Exit(err, exitUsage)
		}
	}
	return s, nil
}

// secretFlag returns the secret given by --NAME or --NAME-file (not both),
// "" if neither. A file's trailing newline is not part of the secret.
func secretFlag(c *cli.Context, name string) (string, error) {
	v, file := c.String(name), c.String(name+"-file")
	switch {
	case v != "" && file != "":
		return "", cli.Exit(fmt.Sprintf("--%s and --%s-file are exclusive", name, name), exitUsage)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", cli.Exit(fmt.Sprintf("--%s-file: %v", name, err), exitUsage)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}
