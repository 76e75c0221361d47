package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// ErrNoDaemon means nothing is listening on the API socket.
var ErrNoDaemon = errors.New("api: no daemon running")

// Client talks to a daemon over its Unix socket. Each Call uses its own
// connection, so calls may run concurrently with a subscription.
type Client struct {
	// Path is the socket's path.
	Path string
	// DialTimeout bounds connecting; default 2 seconds.
	DialTimeout time.Duration

	nextID atomic.Int64
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client { return &Client{Path: path} }

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.DialTimeout}
	if d.Timeout == 0 {
		d.Timeout = 2 * time.Second
	}
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoDaemon
		}
		return nil, fmt.Errorf("api: connecting to %s: %w", c.Path, err)
	}
	return conn, nil
}

// Call runs method with params (any JSON-encodable value, or nil) and
// decodes the result into result (if non-nil). A JSON-RPC error comes
// back as *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	id := c.nextID.Add(1)
	req := struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int64  `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", id, method, params}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("api: encoding %s request: %w", method, err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return c.ioError(ctx, method, err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, tooLong, err := readLine(r, 64<<20)
		if tooLong {
			return fmt.Errorf("api: %s: response too large", method)
		}
		if len(line) == 0 && err != nil {
			return c.ioError(ctx, method, err)
		}
		var resp Response
		if json.Unmarshal(line, &resp) != nil {
			return fmt.Errorf("api: %s: malformed response", method)
		}
		if string(resp.ID) != strconv.FormatInt(id, 10) {
			if resp.Error != nil && string(resp.ID) == "null" {
				return resp.Error
			}
			continue // a notification or someone else's response
		}
		if resp.Error != nil {
			return resp.Error
		}
		if result != nil {
			if err := json.Unmarshal(resp.Result, result); err != nil {
				return fmt.Errorf("api: %s: decoding result: %w", method, err)
			}
		}
		return nil
	}
}

func (c *Client) ioError(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("api: %s: connection to daemon lost: %w", method, err)
}

// Subscription is a live event stream from Client.Subscribe.
type Subscription struct {
	// Events delivers events until the subscription ends; then it is
	// closed and Err says why.
	Events <-chan apitypes.Event

	conn net.Conn
	done chan struct{} // closed by Close
	once sync.Once
	mu   sync.Mutex
	err  error
}

// Close ends the subscription.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.conn.Close()
	})
	return nil
}

// Err is why the subscription ended (nil after Close or before the end).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Subscribe opens a connection that receives events after seq (0: only
// new ones). Close it (or cancel ctx) to stop.
func (c *Client) Subscribe(ctx context.Context, after uint64) (*Subscription, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	req := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"after":%d}}`+"\n", after)
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, c.ioError(ctx, "subscribe", err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _, err := readLine(r, 1<<20)
	conn.SetReadDeadline(time.Time{})
	if err != nil && len(line) == 0 {
		conn.Close()
		return nil, c.ioError(ctx, "subscribe", err)
	}
	var resp Response
	if json.Unmarshal(line, &resp) != nil {
		conn.Close()
		return nil, errors.New("api: subscribe: malformed response")
	}
	if resp.Error != nil {
		conn.Close()
		return nil, resp.Error
	}
	events := make(chan apitypes.Event, 64)
	sub := &Subscription{Events: events, conn: conn, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	go func() {
		defer close(events)
		defer stop()
		for {
			line, tooLong, err := readLine(r, 64<<20)
			if tooLong {
				sub.setErr(errors.New("api: event too large"))
				sub.Close()
				return
			}
			if len(line) > 0 {
				var n struct {
					Method string         `json:"method"`
					Params apitypes.Event `json:"params"`
				}
				if json.Unmarshal(line, &n) == nil {
					switch n.Method {
					case "event":
						select {
						case events <- n.Params:
						case <-sub.done:
							return
						}
					case "eventsDropped":
						sub.setErr(errors.New("api: event stream dropped: client fell behind"))
					}
				}
			}
			if err != nil {
				if ctx.Err() == nil {
					sub.setErr(fmt.Errorf("api: event stream ended: %w", err))
				}
				return
			}
		}
	}()
	return sub, nil
}

func (s *Subscription) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return // closed by the caller: not an error
	default:
	}
	if s.err == nil {
		s.err = err
	}
}
