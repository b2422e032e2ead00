package spawnisolated

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// ChannelEnv names the worker's end of its channel. Only the launcher sets it (it strips any
// value a caller passes), and Channel checks what it names, so setting it proves nothing alone.
const ChannelEnv = "SPAWN_ISOLATED_CHANNEL"

var (
	// ErrNoChannel: this process was not started with a channel (options.channel).
	ErrNoChannel = errors.New("spawn-isolated: no channel: this process was not started by spawn-isolated with options.channel")
	// ErrNotLauncher: what the variable names is not a channel from this process's launcher.
	ErrNotLauncher = errors.New("spawn-isolated: the channel is not one its launcher made")
)

// Conn is the worker's end of the channel: a byte stream both ways.
type Conn interface {
	io.ReadWriteCloser
}

// Channel returns the worker's end of its private channel to its launcher, after checking that
// the launcher made it: Linux, a connected Unix socket whose peer is the launcher (its parent,
// or outside this PID namespace under spawn-isolated's init); Windows, the client end of a pipe
// whose server is the process that created this one. The launcher closing its end (stop() on
// Windows without a console) reads as io.EOF.
func Channel() (Conn, error) {
	v := os.Getenv(ChannelEnv)
	if v == "" {
		return nil, ErrNoChannel
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s=%q", ErrNotLauncher, ChannelEnv, v)
	}
	return openChannel(uintptr(n))
}

// JSON is the newline-delimited JSON convenience over a Conn (options.channel: 'json' on the
// Node side: worker.send() and 'message' events).
type JSON struct {
	conn Conn
	r    *bufio.Reader
	enc  *json.Encoder
}

// NewJSON wraps a channel.
func NewJSON(c Conn) *JSON {
	return &JSON{conn: c, r: bufio.NewReaderSize(c, 64*1024), enc: json.NewEncoder(c)}
}

// Send writes v as one line of JSON.
func (j *JSON) Send(v any) error { return j.enc.Encode(v) }

// Receive reads the next line into v; io.EOF once the launcher closed its end.
func (j *JSON) Receive(v any) error {
	for {
		line, err := j.r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			return json.Unmarshal(line, v)
		}
		if err != nil {
			return err
		}
	}
}

// Close closes the channel.
func (j *JSON) Close() error { return j.conn.Close() }
