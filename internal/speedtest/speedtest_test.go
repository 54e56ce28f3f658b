package speedtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestClassOf(t *testing.T) {
	netErr := &Error{Runner: "ndt7", Class: ClassNetwork, Err: io.ErrUnexpectedEOF}
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ""},
		{"classified", netErr, ClassNetwork},
		{"wrapped", fmt.Errorf("run ndt7 on eth0: %w", netErr), ClassNetwork},
		{"joined", errors.Join(errors.New("other"), netErr), ClassNetwork},
		{"classified timeout wrapping canceled", &Error{Class: ClassTimeout, Err: context.Canceled}, ClassTimeout},
		{"bare deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassTimeout},
		{"bare cancel", context.Canceled, ClassCanceled},
		{"anything else", errors.New("boom"), ClassInternal},
	} {
		if got := ClassOf(tc.err); got != tc.want {
			t.Errorf("%s: ClassOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestContextError(t *testing.T) {
	if e := ContextError(context.Background(), "ookla"); e != nil {
		t.Errorf("live context: %v", e)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for ctx, want := range map[context.Context]Class{canceled: ClassCanceled, expired: ClassTimeout} {
		e := ContextError(ctx, "ookla")
		if e == nil || e.Class != want || e.Runner != "ookla" || !errors.Is(e, ctx.Err()) {
			t.Errorf("ContextError = %#v, want class %s wrapping %v", e, want, ctx.Err())
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Runner: "ookla", Class: ClassExitStatus, Err: errors.New("exit status 2"),
		Stderr: "\n  first line of stderr  \nsecond line\n"}
	if got, want := e.Error(), "ookla: exit_status: exit status 2 (stderr: first line of stderr)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	long := &Error{Runner: "ookla", Class: ClassExitStatus, Err: errors.New("x"), Stderr: strings.Repeat("a", 1000)}
	if n := len(long.Error()); n > 300 {
		t.Errorf("a long stderr makes a %d-byte message", n)
	}
	plain := &Error{Runner: "ndt7", Class: ClassLocate, Err: errors.New("no capacity")}
	if got := plain.Error(); got != "ndt7: locate: no capacity" {
		t.Errorf("Error() = %q", got)
	}
}
