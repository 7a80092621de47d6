package nomadtest

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// TestValidateJobReportsEveryProblemInNomadsWordsAndOrder pins the
// messages the emulator answers an invalid job with, block by block, in
// the order Nomad reports them.
func TestValidateJobReportsEveryProblemInNomadsWordsAndOrder(t *testing.T) {
	const g = "Task group g validation failed: "
	for _, tc := range []struct {
		name   string
		change func(j *api.Job)
		want   []string
	}{
		{"a valid job", func(*api.Job) {}, nil},
		{"group count and tasks", func(j *api.Job) {
			j.TaskGroups[0].Count = new(-1)
			j.TaskGroups[0].Tasks = nil
		}, []string{g + "Task group count can't be negative", g + "Missing tasks for task group"}},
		{"restart block", func(j *api.Job) {
			j.TaskGroups[0].RestartPolicy = &api.RestartPolicy{Attempts: new(0), Interval: new(time.Second), Delay: new(time.Second), Mode: new("again")}
		}, []string{
			g + `Unsupported restart mode: "again"`,
			g + `Restart policy "again" with 0 attempts is ambiguous`,
			g + "Interval can not be less than 5s (got 1s)",
		}},
		{"restart attempts that do not fit the interval", func(j *api.Job) {
			j.TaskGroups[0].RestartPolicy = &api.RestartPolicy{Attempts: new(3), Interval: new(10 * time.Second), Delay: new(5 * time.Second), Mode: new("delay")}
		}, []string{g + "Nomad can't restart the TaskGroup 3 times in an interval of 10s with a delay of 5s"}},
		{"reschedule block", func(j *api.Job) {
			j.TaskGroups[0].ReschedulePolicy = &api.ReschedulePolicy{Attempts: new(2), Delay: new(time.Second), DelayFunction: new("linear")}
		}, []string{
			g + "Delay cannot be less than 5s (got 1s)",
			g + `Invalid delay function "linear", must be one of [constant exponential fibonacci]`,
			g + "Interval must be a non zero value if Attempts > 0",
		}},
		{"exponential reschedule below its delay", func(j *api.Job) {
			j.TaskGroups[0].ReschedulePolicy = &api.ReschedulePolicy{Unlimited: new(true), Delay: new(10 * time.Second), MaxDelay: new(time.Second), DelayFunction: new("exponential")}
		}, []string{g + "Max Delay cannot be less than Delay 10s (got 1s)"}},
		{"a reschedule block that never reschedules is not checked", func(j *api.Job) {
			j.TaskGroups[0].ReschedulePolicy = &api.ReschedulePolicy{Attempts: new(0), DelayFunction: new("linear")}
		}, nil},
		{"update block", func(j *api.Job) {
			j.TaskGroups[0].Update = &api.UpdateStrategy{HealthCheck: new("vibes"), MinHealthyTime: new(-time.Second), HealthyDeadline: new(time.Duration(0)), ProgressDeadline: new(-2 * time.Second)}
		}, []string{
			g + `Invalid health check given: "vibes"`,
			g + "Minimum healthy time may not be less than zero: -1s",
			g + "Healthy deadline must be greater than zero: 0s",
			g + "Progress deadline must be zero or greater than the healthy deadline: -2s",
		}},
		{"update block with a minimum healthy time past the deadline", func(j *api.Job) {
			j.TaskGroups[0].Update = &api.UpdateStrategy{MinHealthyTime: new(time.Minute), HealthyDeadline: new(time.Second)}
		}, []string{g + "Minimum healthy time must be less than healthy deadline: 1m0s > 1s"}},
		{"networks and ports", func(j *api.Job) {
			j.TaskGroups[0].Networks = []*api.NetworkResource{
				{
					ReservedPorts: []api.Port{{Label: "a-b", Value: 0}, {Label: "p", Value: 80, To: -2}},
					DynamicPorts:  []api.Port{{Label: "p", Value: 8080}},
				},
				{},
			}
		}, []string{
			g + "Only one network resource is allowed",
			g + `Port label "a-b" is not usable as NOMAD_PORT_<label>: use letters, digits and '_'`,
			g + `Port "a-b" has an invalid port 0`,
			g + `Port "p" cannot be mapped to -2`,
			g + `Port label "p" already in use`,
			g + `Port "p" is dynamic and cannot have a static value`,
		}},
		{"task driver, resources and kill timeout", func(j *api.Job) {
			j.TaskGroups[0].Tasks = []*api.Task{
				{Name: "", Driver: "docker", Config: map[string]any{"ports": []any{"nope"}}, KillTimeout: new(-time.Second),
					Resources: &api.Resources{CPU: new(0), MemoryMB: new(5), MemoryMaxMB: new(4)}},
				{Name: "r", Driver: "raw_exec"},
				{Name: "n"},
				{Name: "j", Driver: "java"},
			}
		}, []string{
			g + "Task  validation failed: Missing task name",
			g + "Task  validation failed: Missing required field image",
			g + `Task  validation failed: Port "nope" not found, check network block`,
			g + "Task  validation failed: minimum CPU value is 1; got 0",
			g + "Task  validation failed: minimum MemoryMB value is 10; got 5",
			g + "Task  validation failed: MemoryMaxMB value (4) should be larger than MemoryMB value (5)",
			g + "Task  validation failed: KillTimeout must be a positive value",
			g + "Task r validation failed: Missing required field command",
			g + "Task n validation failed: Missing task driver",
			g + `Task j validation failed: emulator: driver "java" is not available on the emulated node (docker, raw_exec)`,
		}},
		{"services of the group and of its tasks, and their checks", func(j *api.Job) {
			grp := j.TaskGroups[0]
			grp.Networks = []*api.NetworkResource{{ReservedPorts: []api.Port{{Label: "http", Value: 8080}}}}
			grp.Services = []*api.Service{
				nil,
				{Name: "-bad-", PortLabel: "missing", Provider: "etcd"},
				{Name: "web", PortLabel: "http", Provider: "nomad", Checks: []api.ServiceCheck{
					{Name: "c1", Type: "script", Interval: time.Second, Timeout: time.Second},
					{Name: "c2", Type: "http", Interval: time.Millisecond, Timeout: time.Millisecond},
				}},
			}
			grp.Tasks[0].Services = []*api.Service{{Name: "api", Provider: "consul", Checks: []api.ServiceCheck{
				{Name: "c3", Type: "exec", Interval: time.Second, Timeout: time.Second},
				{Name: "c4", Type: "grpc", Interval: time.Second, Timeout: time.Second},
			}}}
		}, []string{
			g + `Service name must be valid per RFC 1123 and can contain only alphanumeric characters or dashes: "-bad-"`,
			g + `Service -bad-: port label "missing" is not in the group's network`,
			g + `Service -bad-: unknown provider "etcd"`,
			g + `Service web: check c1: invalid check type ("script"), must be one of http, tcp`,
			g + "Service web: check c2: http type must have http path",
			g + "Service web: check c2: minimum check interval is 1s (got 1ms)",
			g + "Service web: check c2: minimum check timeout is 1s (got 1ms)",
			g + `Service api: check c3: invalid type ("exec")`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := testJob("j")
			tc.change(j)
			if got := validateJob(j); !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}
