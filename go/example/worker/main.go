// The README's "Writing a worker" example, as written there (test/readme.test.ts checks that
// they match, and builds and runs it); go vet / go test ./... keep it compiling.
package main

import (
	"os"
	"os/signal"
	"syscall"

	spawnisolated "spawn-isolated/go"
)

func main() {
	// Refuse to run unless started by a spawn-isolated launcher (with a channel), confined,
	// and with at most 512 MiB: otherwise a message on stderr and exit code 78.
	_, conn := spawnisolated.Require(spawnisolated.FromLauncher(), spawnisolated.Confined(),
		spawnisolated.MemoryAtMost(512<<20))
	spawnisolated.Tune() // GOMAXPROCS and the Go memory limit from the limits found
	ch := spawnisolated.NewJSON(conn)

	// How stop() asks it to end: SIGTERM on Linux; on Windows os.Interrupt (CTRL_BREAK_EVENT)
	// when it shares the launcher's console, else the end of its channel (Receive: io.EOF).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	jobs := make(chan map[string]any)
	go func() {
		defer close(jobs)
		for {
			var job map[string]any
			if ch.Receive(&job) != nil {
				return // the launcher closed the channel
			}
			jobs <- job
		}
	}()
	for {
		select {
		case job, ok := <-jobs:
			if !ok {
				os.Exit(0) // the end of the channel: no more jobs will come
			}
			f, _ := os.CreateTemp("", "work-*") // in its private temp directory
			f.Close()
			ch.Send(map[string]any{"done": job["id"]})
		case <-stop:
			os.Exit(0) // asked to stop, between jobs: nothing is left half done
		}
	}
}
