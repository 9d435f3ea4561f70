package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eddy-streams/eddy/api"
)

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// SavepointURL is the savepoint's directory; it must be readable by
	// both clusters. Empty: the source cluster's default directory, which
	// the target must then reach too (a shared bucket).
	SavepointURL string
	// Drain fires every window before the savepoint.
	Drain bool
	// Timeout bounds each step that waits: the savepoint, the job's end on
	// the source, its start on the target. Default 5 minutes.
	Timeout time.Duration
	// Poll is how often progress is checked. Default 50 ms: the pause of a migration includes up to one poll.
	Poll time.Duration
}

// MigrateResult says where the job runs after Migrate.
type MigrateResult struct {
	// JobID is the job's id where it runs now; OnTarget says which cluster
	// that is.
	JobID    string
	OnTarget bool
	// Savepoint is the savepoint the job was stopped with, if it was.
	Savepoint api.Checkpoint
}

// Migrate moves a running job from the cluster of src to the cluster of
// dst: it copies the job's artifact to dst, stops the job on src with a
// savepoint, and submits the same job (artifact, graph, arguments,
// configuration, and id unless dst has a job of that id) on dst from the
// savepoint. Each step is reported on progress. Whatever fails, the job
// runs on exactly one cluster, or the error says what state each is in:
// a stop that fails leaves the job running on src; a target that refuses
// the job or does not start it gets it cancelled, and the job is started
// again on src from the savepoint.
func Migrate(ctx context.Context, src, dst *Client, id string, o MigrateOptions, progress io.Writer) (MigrateResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, format+"\n", args...) }
	stay := MigrateResult{JobID: id}

	// Before the job stops: everything that can be checked and copied.
	j, err := src.Job(ctx, id)
	if err != nil {
		return stay, fmt.Errorf("job %s on the source: %w", id, err)
	}
	if j.Status != "RUNNING" {
		return stay, fmt.Errorf("job %s is %s on the source, not RUNNING: nothing migrated", id, j.Status)
	}
	if j.Artifact == nil || len(j.Graph) == 0 {
		return stay, fmt.Errorf("job %s has no artifact or job graph to submit elsewhere: nothing migrated", id)
	}
	if _, err := dst.Overview(ctx); err != nil {
		return stay, fmt.Errorf("target cluster: %w; nothing migrated, job %s runs on the source", err, id)
	}
	targetID := id
	if _, err := dst.Job(ctx, id); err == nil {
		targetID = id + "-" + shortID()
		if len(targetID) > 64 {
			targetID = targetID[len(targetID)-64:]
		}
		say("job id %s is taken on the target: the job will be %s there", id, targetID)
	} else if e := (*Error)(nil); !errors.As(err, &e) || e.Code != "job_not_found" {
		return stay, fmt.Errorf("target cluster: %w; nothing migrated, job %s runs on the source", err, id)
	}
	say("copying artifact sha256:%s to the target", j.Artifact.SHA256)
	a, n, err := copyArtifact(ctx, src, dst, j.Artifact.SHA256)
	if err != nil {
		return stay, fmt.Errorf("copy artifact: %w; nothing migrated, job %s runs on the source", err, id)
	}
	say("artifact copied: %d bytes", n)

	// Stop with savepoint.
	where := o.SavepointURL
	if where == "" {
		where = "the source's default savepoint directory"
	}
	say("stopping job %s on the source with a savepoint to %s", id, where)
	tr, err := src.StopWithSavepoint(ctx, id, o.SavepointURL, o.Drain)
	if err != nil {
		return stay, fmt.Errorf("stop with savepoint: %w; %s", err, describe(ctx, src, "source", id))
	}
	start := time.Now()
	sp, err := WaitSavepoint(ctx, src, id, tr.RequestID, o.Timeout, o.Poll, func(cp api.Checkpoint) {
		say("savepoint %d in progress (%s)", cp.ID, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return stay, fmt.Errorf("stop with savepoint: %w; %s", err, describe(ctx, src, "source", id))
	}
	stay.Savepoint = sp
	say("savepoint %d taken at %s (%d bytes, %s)", sp.ID, sp.URL, sp.SizeBytes, time.Duration(sp.DurationMs)*time.Millisecond)
	ended, err := WaitJob(ctx, src, id, o.Timeout, o.Poll, terminal)
	if err != nil {
		return stay, fmt.Errorf("job %s did not end on the source after its savepoint: %w; %s; nothing submitted to the target (savepoint at %s)", id, err, describe(ctx, src, "source", id), sp.URL)
	}
	say("job %s is %s on the source", id, ended.Status)

	// Start on the target.
	spec := api.SubmitJob{
		JobID: targetID, Name: j.Name, Artifact: &a, Graph: j.Graph, Args: j.Args, Config: j.Config,
		Restore: &api.Restore{URL: sp.URL},
	}
	tj, err := dst.Submit(ctx, spec)
	if err == nil {
		say("submitted to the target as job %s", tj.ID)
		tj, err = WaitJob(ctx, dst, tj.ID, o.Timeout, o.Poll, func(j api.Job) bool { return j.Status == "RUNNING" || terminal(j) })
		if err == nil && tj.Status == "RUNNING" {
			say("job %s is RUNNING on the target", tj.ID)
			return MigrateResult{JobID: tj.ID, OnTarget: true, Savepoint: sp}, nil
		}
		if err == nil {
			err = fmt.Errorf("job %s is %s on the target: %s", tj.ID, tj.Status, tj.StatusReason)
		}
	}
	// Make sure it does not run there (a submit whose answer was lost may
	// have created it) before starting it here.
	if cerr := cancelAndWait(ctx, dst, targetID, o); cerr != nil {
		return stay, fmt.Errorf("target: %w; making sure it does not run there failed (%v), so the job is not restarted on the source: %s; %s; savepoint at %s",
			err, cerr, describe(ctx, dst, "target", targetID), describe(ctx, src, "source", id), sp.URL)
	}
	targetErr := err
	say("the target did not run the job: %v", targetErr)

	// Back on the source, from the savepoint.
	spec.JobID = id + "-" + shortID()
	if len(spec.JobID) > 64 {
		spec.JobID = spec.JobID[len(spec.JobID)-64:]
	}
	spec.Artifact = j.Artifact
	say("restarting the job on the source from savepoint %s as job %s", sp.URL, spec.JobID)
	rj, err := src.Submit(ctx, spec)
	if err == nil {
		rj, err = WaitJob(ctx, src, rj.ID, o.Timeout, o.Poll, func(j api.Job) bool { return j.Status == "RUNNING" || terminal(j) })
		if err == nil && rj.Status != "RUNNING" {
			err = fmt.Errorf("it is %s: %s", rj.Status, rj.StatusReason)
		}
	}
	if err != nil {
		return stay, fmt.Errorf("migration failed on the target (%v) and restarting on the source failed too (%v): the job runs on neither cluster; start it from savepoint %s", targetErr, err, sp.URL)
	}
	say("job %s is RUNNING on the source", rj.ID)
	return MigrateResult{JobID: rj.ID, Savepoint: sp}, fmt.Errorf("migration failed: %v; the job runs on the source again as %s, from savepoint %s, and not on the target", targetErr, rj.ID, sp.URL)
}

// WaitSavepoint polls a savepoint request until it completes (nil error)
// or fails, calling inProgress about once a second meanwhile.
func WaitSavepoint(ctx context.Context, c *Client, id, request string, timeout, poll time.Duration, inProgress func(api.Checkpoint)) (api.Checkpoint, error) {
	deadline := time.Now().Add(timeout)
	var last time.Time
	for {
		cp, err := c.Savepoint(ctx, id, request)
		if err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Status < 500 {
				return cp, err
			}
		} else {
			switch cp.Status {
			case "COMPLETED":
				return cp, nil
			case "FAILED", "DISCARDED":
				return cp, fmt.Errorf("savepoint %d failed: %s", cp.ID, cp.Failure)
			}
			if inProgress != nil && time.Since(last) >= time.Second {
				last = time.Now()
				inProgress(cp)
			}
		}
		if time.Now().After(deadline) {
			return cp, fmt.Errorf("savepoint %s not complete after %s", request, timeout)
		}
		select {
		case <-ctx.Done():
			return cp, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// WaitJob polls a job until done says it is where it should be.
func WaitJob(ctx context.Context, c *Client, id string, timeout, poll time.Duration, done func(api.Job) bool) (api.Job, error) {
	deadline := time.Now().Add(timeout)
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Status < 500 {
				return j, err
			}
		} else if done(j) {
			return j, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return j, err
			}
			return j, fmt.Errorf("job %s is still %s after %s", id, j.Status, timeout)
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func terminal(j api.Job) bool {
	return j.Status == "FINISHED" || j.Status == "FAILED" || j.Status == "CANCELED"
}

// cancelAndWait makes sure a job does not run: it is cancelled unless it
// ended, and waited for until it has.
func cancelAndWait(ctx context.Context, c *Client, id string, o MigrateOptions) error {
	j, err := c.Job(ctx, id)
	if e := (*Error)(nil); errors.As(err, &e) && e.Code == "job_not_found" {
		return nil
	}
	if err != nil {
		return err
	}
	if terminal(j) {
		return nil
	}
	if _, err := c.Cancel(ctx, id); err != nil {
		if e := (*Error)(nil); !errors.As(err, &e) || e.Code != "job_not_cancellable" {
			return err
		}
	}
	_, err = WaitJob(ctx, c, id, o.Timeout, o.Poll, terminal)
	return err
}

// describe says what state a job is in on a cluster, for error messages.
func describe(ctx context.Context, c *Client, cluster, id string) string {
	j, err := c.Job(ctx, id)
	if err != nil {
		return fmt.Sprintf("the state of job %s on the %s is unknown (%v)", id, cluster, err)
	}
	s := fmt.Sprintf("job %s is %s on the %s", id, j.Status, cluster)
	if j.StatusReason != "" {
		s += " (" + j.StatusReason + ")"
	}
	return s
}

// copyArtifact downloads an artifact from src and uploads it to dst,
// checking its hash on the way.
func copyArtifact(ctx context.Context, src, dst *Client, sha string) (api.Artifact, int64, error) {
	f, err := os.CreateTemp("", "eddy-artifact-*")
	if err != nil {
		return api.Artifact{}, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := src.DownloadArtifact(ctx, sha, io.MultiWriter(f, h))
	if err != nil {
		return api.Artifact{}, n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return api.Artifact{}, n, fmt.Errorf("downloaded artifact has sha256 %s, not %s", got, sha)
	}
	if err := f.Close(); err != nil {
		return api.Artifact{}, n, err
	}
	a, err := dst.UploadArtifact(ctx, f.Name())
	if err != nil {
		return api.Artifact{}, n, fmt.Errorf("upload to the target: %w", err)
	}
	if a.SHA256 != sha {
		return api.Artifact{}, n, fmt.Errorf("the target stored the artifact as sha256 %s, not %s", a.SHA256, sha)
	}
	return a, n, nil
}

func shortID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
