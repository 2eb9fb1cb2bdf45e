// Command starling runs a cache node (`starling start`) and is also its
// command-line client (`get`, `set`, `del`, `scan`, `leave`) and operator's view
// of a cluster (`members`, `ring`, `stats`).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Exit codes, so scripts can tell a missing key from a dead node.
const (
	exitNotFound    = 1
	exitUsage       = 2
	exitUnavailable = 3
	exitError       = 4
)

func main() {
	app := &cli.App{
		Name:  "starling",
		Usage: "a leaderless, peer-to-peer in-memory cache cluster",
		Commands: []*cli.Command{
			withConfigFile(startCommand()),
			getCommand(),
			setCommand(),
			delCommand(),
			scanCommand(),
			membersCommand(),
			ringCommand(),
			statsCommand(),
			leaveCommand(),
			benchCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors once, below
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "starling:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(exitUsage)
	}
}
