// The README's "Writing a worker" example, kept compiling by go vet / go test ./....
package main

import (
	"os"

	spawnisolated "spawn-isolated/go"
)

func main() {
	// Refuse to run unless started by a spawn-isolated launcher (with a channel), confined,
	// and with at most 512 MiB: otherwise a message on stderr and exit code 78.
	_, conn := spawnisolated.Require(spawnisolated.FromLauncher(), spawnisolated.Confined(),
		spawnisolated.MemoryAtMost(512<<20))
	spawnisolated.Tune() // GOMAXPROCS and the Go memory limit from the limits found
	ch := spawnisolated.NewJSON(conn)
	for {
		var job map[string]any
		if err := ch.Receive(&job); err != nil {
			os.Exit(0) // the launcher closed the channel: drain and end
		}
		f, _ := os.CreateTemp("", "work-*") // in its private temp directory
		f.Close()
		ch.Send(map[string]any{"done": job["id"]})
	}
}
