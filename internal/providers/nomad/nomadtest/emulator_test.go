package nomadtest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

func client(t *testing.T, e *Emulator) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: e.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testJob is a minimal valid service job.
func testJob(id string) *api.Job {
	return &api.Job{
		ID: new(id), Type: new("service"),
		TaskGroups: []*api.TaskGroup{{
			Name: new("g"), Count: new(1),
			RestartPolicy:    &api.RestartPolicy{Attempts: new(1), Interval: new(time.Minute), Delay: new(10 * time.Millisecond), Mode: new("fail")},
			ReschedulePolicy: &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)},
			Tasks:            []*api.Task{{Name: "t", Driver: "raw_exec", Config: map[string]any{"command": "/bin/true"}}},
		}},
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegisterEnforcesTheJobModifyIndexAsNomadDoes(t *testing.T) {
	e := Start(t, Options{})
	jobs := client(t, e).Jobs()
	if _, _, err := jobs.EnforceRegister(testJob("j"), 5, nil); err == nil || !strings.Contains(err.Error(), "Enforcing job modify index 5: job does not exist") {
		t.Errorf("index 5 on a new job: %v", err)
	}
	resp, _, err := jobs.EnforceRegister(testJob("j"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.EnforceRegister(testJob("j"), 0, nil); err == nil || !strings.Contains(err.Error(), "500 (Enforcing job modify index 0: job already exists)") {
		t.Errorf("index 0 on an existing job: %v", err)
	}
	stale := resp.JobModifyIndex - 1
	if _, _, err := jobs.EnforceRegister(testJob("j"), stale, nil); err == nil || !strings.Contains(err.Error(), "job exists with conflicting job modify index") {
		t.Errorf("a stale index: %v", err)
	}
	if _, _, err := jobs.EnforceRegister(testJob("j"), resp.JobModifyIndex, nil); err != nil {
		t.Errorf("the current index: %v", err)
	}
}

func TestAllocationsOfAPurgedJobAreLeftOutOfItsSuccessor(t *testing.T) {
	e := Start(t, Options{})
	c := client(t, e)
	if _, _, err := c.Jobs().Register(testJob("j"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Jobs().Deregister("j", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Jobs().Register(testJob("j"), nil); err != nil {
		t.Fatal(err)
	}
	current, _, err := c.Jobs().Allocations("j", false, nil)
	if err != nil || len(current) != 1 {
		t.Errorf("all=false: %d allocations, %v", len(current), err)
	}
	all, _, err := c.Jobs().Allocations("j", true, nil)
	if err != nil || len(all) != 2 {
		t.Errorf("all=true: %d allocations, %v", len(all), err)
	}
	if _, _, err := c.Jobs().Info("nope", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a missing job: %v", err)
	}
}

func TestAllocationLifecycleFollowsTheRestartBlock(t *testing.T) {
	e := Start(t, Options{CrashAfter: 5 * time.Millisecond})
	c := client(t, e)
	if _, _, err := c.Jobs().Register(testJob("j"), nil); err != nil {
		t.Fatal(err)
	}
	first := e.Allocations("j")
	if len(first) != 1 || first[0].ClientStatus != "pending" {
		t.Fatalf("a new allocation: %+v", first)
	}
	waitUntil(t, "running and healthy", func() bool {
		as := e.Allocations("j")
		return as[0].ClientStatus == "running" && as[0].DeploymentStatus != nil && *as[0].DeploymentStatus.Healthy
	})
	e.CrashLoop("j", 7)
	// One restart (attempts = 1), then the allocation fails; with
	// rescheduling off the job dies.
	waitUntil(t, "the job to die", func() bool { return *e.Job("j").Status == "dead" })
	a := e.Allocations("j")[0]
	ts := a.TaskStates["t"]
	if a.ClientStatus != "failed" || ts.Restarts != 1 || !ts.Failed || ts.State != "dead" {
		t.Errorf("allocation %s, task %+v", a.ClientStatus, ts)
	}
	var types []string
	for _, ev := range ts.Events {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, ","); got != "Received,Started,Terminated,Restarting,Started,Terminated,Not Restarting" {
		t.Errorf("events: %s", got)
	}

	// Stopping completes the allocations.
	if _, _, err := c.Jobs().Register(testJob("k"), nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "k running", func() bool { return e.Allocations("k")[0].ClientStatus == "running" })
	if err := e.StopJob("k"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "k complete", func() bool { return e.Allocations("k")[0].ClientStatus == "complete" })
	if j := e.Job("k"); !*j.Stop || *j.Status != "dead" {
		t.Errorf("a stopped job: stop %v, status %s", *j.Stop, *j.Status)
	}
}

func TestRegisterRefusesWhatNomadRefuses(t *testing.T) {
	e := Start(t, Options{})
	jobs := client(t, e).Jobs()
	j := testJob("bad")
	j.TaskGroups[0].RestartPolicy.Interval = new(time.Second)
	j.TaskGroups[0].Tasks[0].Resources = &api.Resources{MemoryMB: new(4)}
	j.TaskGroups[0].Services = []*api.Service{{Name: "bad_name", Provider: "nomad", Checks: []api.ServiceCheck{{Type: "script", Interval: time.Second, Timeout: time.Second}}}}
	_, _, err := jobs.Register(j, nil)
	for _, want := range []string{"Interval can not be less than 5s", "minimum MemoryMB value is 10", "RFC 1123", "invalid check type"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("register: %v, want %q", err, want)
		}
	}
	resp, _, err := jobs.Validate(j, nil)
	if err != nil || len(resp.ValidationErrors) != 4 {
		t.Errorf("validate: %+v, %v", resp, err)
	}
	if ids := e.JobIDs(); len(ids) != 0 {
		t.Errorf("a refused job was kept: %v", ids)
	}
}

func TestLogsStreamFramesFromAnOffset(t *testing.T) {
	e := Start(t, Options{})
	c := client(t, e)
	if _, _, err := c.Jobs().Register(testJob("j"), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteLog("j", "stdout", "0123456789\n"); err != nil {
		t.Fatal(err)
	}
	al, _, err := c.Allocations().Info(e.Allocations("j")[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	frames, errs := c.AllocFS().Logs(al, false, "t", "stdout", "end", 4, nil, nil)
	var got string
	var last *api.StreamFrame
	for f := range frames {
		got += string(f.Data)
		last = f
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if got != "789\n" || last.Offset != 11 || last.File != "alloc/logs/t.stdout.0" {
		t.Errorf("from 4 before the end: %q, last frame %+v", got, last)
	}
	if _, errs := c.AllocFS().Logs(al, false, "nope", "stdout", "start", 0, nil, nil); !strings.Contains((<-errs).Error(), "unknown task name") {
		t.Error("a wrong task name was accepted")
	}
}

func TestFaultsAndTheToken(t *testing.T) {
	e := Start(t, Options{Token: "secret"})
	c := client(t, e)
	if _, _, err := c.Jobs().List(nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("no token: %v", err)
	}
	c.SetSecretID("secret")
	e.FailNext(http.MethodGet, "/v1/jobs", 1, http.StatusServiceUnavailable)
	if _, _, err := c.Jobs().List(nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("an injected 503: %v", err)
	}
	if _, _, err := c.Jobs().List(nil); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	e.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, _, err := c.Jobs().List(nil); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Errorf("a slow answer: %v after %v", err, time.Since(start))
	}
	for _, r := range e.Requests()[1:] {
		if !r.Token {
			t.Errorf("%s %s: no token recorded", r.Method, r.Path)
		}
	}
}

func TestAFailedAllocationIsRescheduledByTheRescheduleBlock(t *testing.T) {
	e := Start(t, Options{RescheduleDelay: time.Millisecond})
	c := client(t, e)
	j := testJob("j")
	j.TaskGroups[0].RestartPolicy = &api.RestartPolicy{Attempts: new(0), Interval: new(time.Minute), Delay: new(time.Duration(0)), Mode: new("fail")}
	j.TaskGroups[0].ReschedulePolicy = &api.ReschedulePolicy{Unlimited: new(true), Delay: new(5 * time.Second), DelayFunction: new("constant")}
	if _, _, err := c.Jobs().Register(j, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "running", func() bool { return e.Allocations("j")[0].ClientStatus == "running" })
	if err := e.Crash("j", 1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a replacement", func() bool { as := e.Allocations("j"); return len(as) == 2 && as[1].ClientStatus == "running" })
	as := e.Allocations("j")
	if as[0].ClientStatus != "failed" || as[0].NextAllocation != as[1].ID || as[1].RescheduleTracker == nil {
		t.Errorf("allocations: %+v, %+v", as[0], as[1])
	}
	full, _, err := c.Allocations().Info(as[1].ID, nil)
	if err != nil || full.PreviousAllocation != as[0].ID {
		t.Errorf("the replacement's previous allocation: %v, %v", full, err)
	}
	if *e.Job("j").Status != "running" {
		t.Errorf("job status %s", *e.Job("j").Status)
	}
}
