// Command starling runs a cache node (`starling start`) and is also its
// command-line client (`get`, `set`, `del`, `members`).
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
			startCommand(),
			getCommand(),
			setCommand(),
			delCommand(),
			membersCommand(),
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
