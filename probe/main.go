// spawn-isolated-probe: the program `spawn-isolated --self-test` runs under each limit in turn.
// Each mode pushes against one limit and prints one JSON line saying how far it got; the
// launcher compares that (and how the probe ended) with what the host claims to enforce.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	spawnisolated "spawn-isolated/go"
)

func out(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: spawn-isolated-probe MODE [ARGS...]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "alloc":
		// alloc MB: allocates and touches MB MiB, 1 MiB at a time.
		var keep [][]byte
		for i := 0; i < atoi(args[0]); i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		out(map[string]any{"allocated": len(keep)})
	case "spin":
		// spin MS THREADS: keeps THREADS threads busy for MS of wall time.
		deadline := time.Now().Add(time.Duration(atoi(args[0])) * time.Millisecond)
		var wg sync.WaitGroup
		for t := 0; t < atoi(args[1]); t++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				x := 0
				for time.Now().Before(deadline) {
					for i := 0; i < 100000; i++ {
						x += i
					}
				}
				_ = x
			}()
		}
		wg.Wait()
		out(map[string]any{"spun": true})
	case "spawn":
		// spawn N MS: starts N children that each sleep MS, all at once; reports how many started.
		var cmds []*exec.Cmd
		var firstErr string
		for i := 0; i < atoi(args[0]); i++ {
			c := exec.Command(os.Args[0], "sleep", args[1])
			if err := c.Start(); err != nil {
				if firstErr == "" {
					firstErr = err.Error()
				}
				continue
			}
			cmds = append(cmds, c)
		}
		for _, c := range cmds {
			c.Wait()
		}
		out(map[string]any{"started": len(cmds), "error": firstErr})
	case "handles":
		// handles N: opens this executable N times and holds the handles / fds.
		var files []*os.File
		var firstErr string
		self, _ := os.Executable()
		for i := 0; i < atoi(args[0]); i++ {
			f, err := os.Open(self)
			if err != nil {
				firstErr = err.Error()
				break
			}
			files = append(files, f)
		}
		time.Sleep(300 * time.Millisecond) // long enough for a sampling watchdog to see them
		out(map[string]any{"opened": len(files), "error": firstErr})
	case "sleep":
		time.Sleep(time.Duration(atoi(args[0])) * time.Millisecond)
	case "fds":
		// fds: the handles / fds this process holds besides its stdio, where it can list them.
		out(listFds())
	case "limits":
		// limits: what this process runs under, read from inside (the worker-side Go module).
		out(spawnisolated.Read())
	case "tune":
		// tune: Tune(), and what the runtime then runs with.
		l, t := spawnisolated.Tune()
		out(map[string]any{"limits": l, "tuned": t, "gomaxprocs": runtime.GOMAXPROCS(0)})
	case "echo":
		// echo: JSON messages over the channel, each sent back as {"echo": message}; at the end
		// of the channel (the launcher closed it) says so and exits 0.
		c, err := spawnisolated.Channel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(spawnisolated.ExitUnconfined)
		}
		j := spawnisolated.NewJSON(c)
		for {
			var m any
			if err := j.Receive(&m); err != nil {
				out(map[string]any{"end": err.Error()})
				return
			}
			if err := j.Send(map[string]any{"echo": m}); err != nil {
				out(map[string]any{"sendError": err.Error()})
				return
			}
		}
	case "progress":
		// progress N: a reader goroutine blocked in Receive while another goroutine sends N
		// {"progress": i} messages (a worker reporting progress while it waits for orders); then
		// each message received is answered with {"got": message}, until the end of the channel.
		c, err := spawnisolated.Channel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(spawnisolated.ExitUnconfined)
		}
		j := spawnisolated.NewJSON(c)
		var sendMu sync.Mutex
		send := func(v any) error {
			sendMu.Lock()
			defer sendMu.Unlock()
			return j.Send(v)
		}
		received := make(chan error, 1)
		go func() {
			for {
				var m any
				if err := j.Receive(&m); err != nil {
					received <- err
					return
				}
				send(map[string]any{"got": m})
			}
		}()
		time.Sleep(100 * time.Millisecond) // the reader is blocked in Receive by now
		for i := 0; i < atoi(args[0]); i++ {
			if err := send(map[string]any{"progress": i}); err != nil {
				out(map[string]any{"sendError": err.Error()})
				return
			}
		}
		err = <-received
		out(map[string]any{"end": err.Error()})
	case "copy":
		// copy channel|stdio: sends back every byte it reads, until the end of input.
		if args[0] == "channel" {
			c, err := spawnisolated.Channel()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(spawnisolated.ExitUnconfined)
			}
			io.Copy(c, c)
			c.Close()
			return
		}
		io.Copy(os.Stdout, os.Stdin)
	case "worker":
		// worker: what a real worker does: refuses to run unless started by its launcher and
		// confined, tunes itself, says what it runs under and where its temp files go, then echoes
		// messages until the launcher closes the channel.
		l, conn := spawnisolated.Require(spawnisolated.FromLauncher(), spawnisolated.Confined())
		_, tuned := spawnisolated.Tune()
		j := spawnisolated.NewJSON(conn)
		f, err := os.CreateTemp("", "work-*")
		if err == nil {
			f.Close()
		}
		j.Send(map[string]any{"limits": l, "tuned": tuned, "temp": os.TempDir(), "wrote": err == nil})
		for {
			var m any
			if err := j.Receive(&m); err != nil {
				return
			}
			j.Send(map[string]any{"echo": m})
		}
	case "require":
		// require: refuses to run unless started by a spawn-isolated launcher, confined.
		l, _ := spawnisolated.Require(spawnisolated.FromLauncher(), spawnisolated.Confined())
		out(map[string]any{"running": true, "mechanism": l.Mechanism})
	case "terminal":
		// terminal: can it reach a terminal to push input into (Linux: TIOCSTI)?
		out(terminal())
	case "leave":
		// leave NAME: a file NAME left in the host's shared temporary places, if it can.
		out(leave(args[0]))
	case "connect":
		// connect ADDR: a TCP connection to ADDR (the launcher's loopback listener).
		c, err := net.DialTimeout("tcp", args[0], 3*time.Second)
		if err == nil {
			c.Close()
		}
		out(map[string]any{"connected": err == nil})
	case "read":
		// read PATH: can it read PATH?
		f, err := os.Open(args[0])
		if err == nil {
			_, err = f.Read(make([]byte, 1))
			f.Close()
		}
		out(map[string]any{"read": err == nil || err == io.EOF})
	case "escape":
		// escape PID: what this process could do to PID (its launcher) and to its own limits.
		out(escape(atoi(args[0])))
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
