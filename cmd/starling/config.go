package main

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/urfave/cli/v2"
)

// configFlagName names the flag (and, in STARLING_CONFIG, the variable)
// that points at a command's YAML settings file.
const configFlagName = "config"

// configPrecedence is the rule --config's usage states, in the words of
// docs/deployment.md: the file is the lowest layer an operator writes.
const configPrecedence = "a flag on the command line beats its STARLING_* variable, which beats the file, which beats the default"

// withConfigFile lets cmd read its settings from a YAML file named by
// --config or STARLING_CONFIG, one key per flag, spelled like the flag:
//
//	name: n1
//	max-memory: 2GiB
//	join: [10.0.0.1:7946, 10.0.0.2:7946]
//
// It works on any command without the command knowing: it adds the flag,
// and a Before hook that sets each flag the file names unless the command
// line or the environment already did. Required flags become required of
// the three sources together, checked after the file is read (cli checks
// them before any hook runs, so it would refuse a name given by the file).
func withConfigFile(cmd *cli.Command) *cli.Command {
	var required []string
	for _, f := range cmd.Flags {
		if unrequire(f) {
			required = append(required, f.Names()[0])
		}
	}
	cmd.Flags = append(cmd.Flags, &cli.PathFlag{
		Name:      configFlagName,
		Usage:     "YAML file of settings keyed by these flags' names (max-memory: 2GiB, join: [a:7946, b:7946]); " + configPrecedence,
		EnvVars:   env("CONFIG"),
		TakesFile: true,
	})
	next := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		path := c.Path(configFlagName)
		if path != "" {
			if err := applyConfigFile(c, path); err != nil {
				return cli.Exit(err, exitUsage)
			}
		}
		var missing []string
		for _, name := range required {
			if !c.IsSet(name) {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			// As cli itself does for a missing required flag: help, then
			// the same message (and, through main, exit code).
			templ := c.Command.CustomHelpTemplate
			if templ == "" {
				templ = cli.CommandHelpTemplate
			}
			cli.HelpPrinter(c.App.Writer, templ, c.Command)
			return &missingFlagsError{names: missing, file: path}
		}
		if next != nil {
			return next(c)
		}
		return nil
	}
	return cmd
}

// unrequire clears f's Required field, reporting whether it was set. cli's
// flag types share the field but no setter, hence reflection.
func unrequire(f cli.Flag) bool {
	rf, ok := f.(cli.RequiredFlag)
	if !ok || !rf.IsRequired() {
		return false
	}
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return false
	}
	field := v.Elem().FieldByName("Required")
	if !field.IsValid() || field.Kind() != reflect.Bool || !field.CanSet() {
		return false // an exotic flag type: cli keeps enforcing it
	}
	field.SetBool(false)
	return true
}

// missingFlagsError repeats cli's own message for missing required flags,
// so scripts see the same text with or without a config file.
type missingFlagsError struct {
	names []string
	file  string
}

func (e *missingFlagsError) Error() string {
	var msg string
	if len(e.names) == 1 {
		msg = fmt.Sprintf("Required flag %q not set", e.names[0])
	} else {
		msg = fmt.Sprintf("Required flags %q not set", strings.Join(e.names, ", "))
	}
	if e.file != "" {
		msg += " (on the command line, in the environment or in " + e.file + ")"
	}
	return msg
}

// applyConfigFile sets, from the YAML file at path, every flag of the
// running command that neither the command line nor the environment set.
// Any key that is not one of the command's flags is an error, so a typo
// cannot silently leave a default in place.
func applyConfigFile(c *cli.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.MapSlice
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The parser's message ends with the offending lines and a caret;
		// the trailing blank line would only separate it from nothing.
		return fmt.Errorf("config file %s: %s", path, strings.TrimRight(err.Error(), "\n"))
	}
	flags := map[string]cli.Flag{}
	var names []string
	for _, f := range c.Command.Flags {
		if f == cli.HelpFlag {
			continue
		}
		for _, n := range f.Names() {
			if n != configFlagName {
				flags[n] = f
				names = append(names, n)
			}
		}
	}
	for _, item := range doc {
		key, ok := item.Key.(string)
		if !ok {
			return fmt.Errorf("config file %s: key %v is not a flag name", path, item.Key)
		}
		f, ok := flags[key]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q%s", path, key, suggestFlag(key, names, c.Command.Name))
		}
		values, err := configValues(item.Value, isMultiValue(f))
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
		if c.IsSet(key) || inEnv(f) {
			continue // the command line or the environment wins
		}
		for _, v := range values {
			if err := c.Set(key, v); err != nil {
				// Only a number, switch or duration can fail to parse: the
				// value is safe to show (secrets are free-form strings).
				return fmt.Errorf("config file %s: %s: invalid value %q%s: %w", path, key, v, want(f), err)
			}
		}
	}
	return nil
}

// inEnv reports whether one of f's variables is set, even to "": cli
// counts an empty variable as set for some flag types (strings, lists,
// switches) and not others (numbers, durations), and the file should give
// way to the environment the same way for all of them.
func inEnv(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return false
	}
	for _, ev := range df.GetEnvVars() {
		if _, ok := os.LookupEnv(strings.TrimSpace(ev)); ok {
			return true
		}
	}
	return false
}

// suggestFlag says what to write instead of an unknown key: the flag it
// most likely meant, or where the list of flags is.
func suggestFlag(key string, names []string, cmd string) string {
	guess := strings.ReplaceAll(strings.TrimLeft(strings.ToLower(key), "-"), "_", "-")
	if guess != key && slices.Contains(names, guess) {
		return fmt.Sprintf(" (did you mean %q?)", guess)
	}
	if key == configFlagName {
		return " (a config file cannot name another)"
	}
	return fmt.Sprintf(" (keys are the flags of `starling %s --help`, without the dashes)", cmd)
}

// want says what a flag that failed to parse a value takes: the flag
// package's own message is only "parse error".
func want(f cli.Flag) string {
	switch f.(type) {
	case *cli.DurationFlag:
		return " (want a duration such as 30s or 1m30s)"
	case *cli.BoolFlag:
		return " (want true or false)"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return " (want a whole number)"
	}
	return ""
}

// isMultiValue reports whether f may be given more than once (--join).
func isMultiValue(f cli.Flag) bool {
	sf, ok := f.(cli.DocGenerationSliceFlag)
	return ok && sf.IsSliceFlag()
}

// configValues turns one YAML value into the strings to pass to the flag,
// as if typed on the command line: a scalar gives one, a sequence (for a
// flag that may be repeated) one per item.
func configValues(v any, multi bool) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, fmt.Errorf(`no value (remove the key to keep the default; write "" for an empty string)`)
	case []any:
		if !multi {
			return nil, fmt.Errorf("a list, but the flag takes one value")
		}
		out := make([]string, 0, len(v))
		for i, item := range v {
			s, err := scalar(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// scalar spells a YAML scalar the way it would be typed after the flag.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v), nil
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case nil:
		return "", fmt.Errorf("no value")
	}
	return "", fmt.Errorf("a %s, but the flag takes a string, number or true/false", yamlKind(v))
}

func yamlKind(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Struct:
		return "mapping"
	case reflect.Slice, reflect.Array:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}
