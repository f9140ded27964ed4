// Command breachcast announces a data breach on every channel at once from one
// markdown notice: email to every affected customer, an X thread, a Facebook
// Page post and a live status page; and collects the replies.
//
// Run `breachcast help` for the commands, `breachcast COMMAND --help` for one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"sort"
	"strings"
	"syscall"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/notice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitIncomplete = 3 // publish handed unfinished delivery to `breachcast serve`
)

// app is one invocation: its streams, environment and configuration.
type app struct {
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
	configPath string
	cfg        *Config
	log        *slog.Logger
}

type command struct {
	name    string
	summary string
	usage   string // after "breachcast NAME "
	help    string
	run     func(ctx context.Context, a *app, args []string) error
}

func commands() []*command {
	return []*command{
		demoCommand(), serveCommand(), publishCommand(), previewCommand(), statusCommand(),
		pauseCommand(), resumeCommand(), recipientsCommand(), repliesCommand(), channelsCommand(), retractCommand(),
		auditCommand(), configCommand(), versionCommand(),
	}
}

// usageError is a mistake in the command line; it exits 2 with the usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// incompleteError means the command did its part but delivery goes on
// elsewhere (exit 3).
type incompleteError struct{ msg string }

func (e *incompleteError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	global := flag.NewFlagSet("breachcast", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&a.configPath, "config", "", "config file")
	if err := global.Parse(args); err != nil {
		fmt.Fprintf(stderr, "breachcast: %v\n\n", err)
		printHelp(stderr)
		return exitUsage
	}
	args = global.Args()
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		if len(args) > 1 {
			args = []string{args[1], "--help"}
		} else {
			printHelp(stdout)
			return exitOK
		}
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "breachcast: unknown command %q\n\n", args[0])
		printHelp(stderr)
		return exitUsage
	}
	if len(args) > 1 && (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
		printCommandHelp(stdout, cmd)
		return exitOK
	}
	err := cmd.run(ctx, a, args[1:])
	var ue *usageError
	var ie *incompleteError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "breachcast %s: %v\n\n", cmd.name, err)
		printCommandHelp(stderr, cmd)
		return exitUsage
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "%v\n", err)
		return exitIncomplete
	default:
		fmt.Fprintf(stderr, "breachcast %s: %s\n", cmd.name, describe(err))
		return exitError
	}
}

// describe turns an error into what the user should read: application and
// notice errors as they are, anything else with its context.
func describe(err error) string {
	var ne notice.Errors
	var n1 *notice.Error
	if errors.As(err, &ne) || errors.As(err, &n1) {
		return err.Error()
	}
	var be *breachcast.Error
	if errors.As(err, &be) {
		return be.Message
	}
	return err.Error()
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `breachcast: one breach notice, every channel, every reply.

Usage: breachcast [--config FILE] COMMAND [ARGS]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'breachcast COMMAND --help' for a command's options.
Settings come from the config file (--config, $BREACHCAST_CONFIG or ./breachcast.yaml)
and from BREACHCAST_* environment variables; 'breachcast config --help' lists them all.
`)
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: breachcast %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
}

// flags returns a flag set for a command whose errors become usage errors.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args, allowing flags after positional arguments
// ("publish notice.md --detach"), and wraps errors as usage errors.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// config loads the configuration once.
func (a *app) config() (*Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path := a.configPath
	if path == "" {
		path = a.getenv("BREACHCAST_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat("breachcast.yaml"); err == nil {
			path = "breachcast.yaml"
		}
	}
	c, err := loadConfig(path, a.getenv)
	if err != nil {
		return nil, err
	}
	a.cfg = c
	a.log = newLogger(a.stderr, c.LogLevel)
	return c, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// actor is the name recorded in the audit log.
func (a *app) actor() string {
	if a.cfg != nil && a.cfg.Actor != "" {
		return a.cfg.Actor
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
