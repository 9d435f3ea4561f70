package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
)

func TestSubmitThroughFollowerVisibleEverywhere(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	leader := c.Leader()
	var follower string
	for _, s := range c.Running() {
		if s != leader {
			follower = s.HTTPAddr()
			break
		}
	}
	ctx := context.Background()
	cl := client.New([]string{follower})
	j, err := cl.Submit(ctx, api.SubmitJob{Name: "wordcount", Parallelism: 2})
	if err != nil {
		t.Fatalf("submit through follower: %v", err)
	}
	if j.Status != "CREATED" || j.Name != "wordcount" || j.MaxParallelism != 128 {
		t.Fatalf("submitted job = %+v", j)
	}
	for _, s := range c.Running() {
		cptest.WaitFor(t, 5*time.Second, func() error {
			got, err := client.New([]string{s.HTTPAddr()}).Job(ctx, j.ID, client.Stale())
			if err != nil {
				return err
			}
			if got.ID != j.ID {
				return fmt.Errorf("node %s: job %q", s.ID(), got.ID)
			}
			return nil
		})
	}
	var apiErr *client.Error
	if _, err := cl.Job(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "job_not_found" {
		t.Fatalf("unknown job: %v", err)
	}
}
