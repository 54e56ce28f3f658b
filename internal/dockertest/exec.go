package dockertest

import (
	"bytes"
	"context"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Exec runs cmd in the running container id, as `docker exec` does: as
// user ("" is the container's own), with env added, and returns its exit
// status and what it wrote (stdout and stderr).
func (e *Engine) Exec(ctx context.Context, id, user string, env []string, cmd ...string) (int, string) {
	e.t.Helper()
	created, err := e.API.ExecCreate(ctx, id, client.ExecCreateOptions{
		User: user, Env: env, Cmd: cmd, AttachStdout: true, AttachStderr: true,
	})
	must(e.t, err, "exec in %s", id)
	att, err := e.API.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	must(e.t, err, "attach to exec in %s", id)
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	must(e.t, err, "read exec output in %s", id)
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := e.API.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		must(e.t, err, "inspect exec in %s", id)
		if !res.Running {
			return res.ExitCode, out.String()
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("dockertest: exec %v in %s still running", cmd, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Logs returns what the container wrote (stdout and stderr), for a
// failing test to show.
func (e *Engine) Logs(ctx context.Context, id string) string {
	rc, err := e.API.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}
