package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
)

// statusRow is one component of `status -o json` with its health and
// registrations.
type statusRow struct {
	Address      string            `json:"address"`
	State        string            `json:"state"`
	Detail       string            `json:"detail"`
	Health       string            `json:"health"`
	RegisteredAs []json.RawMessage `json:"registered_as"`
}

// statusRows reads `status -o json`'s rows by address, and its data flows.
func (f *fixture) statusRows() (map[string]statusRow, []json.RawMessage) {
	f.t.Helper()
	r := f.must(0, "status", "-o", "json")
	var doc struct {
		Components []statusRow       `json:"components"`
		DataFlows  []json.RawMessage `json:"data_flows"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		f.t.Fatalf("decode status -o json: %v\n%s", err, r)
	}
	rows := map[string]statusRow{}
	for _, c := range doc.Components {
		rows[c.Address] = c
	}
	return rows, doc.DataFlows
}

// Finding 9 of #13: a component that is restarting is not healthy.
func TestDayTwoStatusARestartingComponentIsNotHealthy(t *testing.T) {
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	const addr = "source.beat"
	f.write("pipeline.hcl", strings.Replace(beatingPipeline(f, sdk), `initial = "100ms"`, `initial = "1h"
      max     = "1h"`, 1))
	f.apply()
	waitFor(t, 20*time.Second, "a healthy registration", func() bool { return f.mustRow(addr).Health == "healthy" })
	if err := syscall.Kill(childOf(f.records()[addr].Handle).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "status restarting", func() bool { return f.mustRow(addr).State == "restarting" })
	if row := f.mustRow(addr); row.Health == "healthy" {
		t.Fatalf("a restarting component shows health %q", row.Health)
	}
	if out := f.must(0, "status").out; strings.Contains(out, "restarting  healthy") {
		t.Fatalf("table:\n%s", out)
	}
}

// Finding 9 of #13: a component killed while the control plane was down
// is a failure nothing restarts, not `stopped healthy`.
func TestDayTwoStatusAComponentKilledWhileServeIsDownIsFailed(t *testing.T) {
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	const addr = "source.beat"
	f.write("pipeline.hcl", beatingPipeline(f, sdk))
	f.apply()
	waitFor(t, 20*time.Second, "a healthy registration", func() bool { return f.mustRow(addr).Health == "healthy" })
	f.killServe()
	if err := syscall.Kill(childOf(f.records()[addr].Handle).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the kill to be seen", func() bool { return f.mustRow(addr).State != "running" })
	row := f.mustRow(addr)
	if row.State != "failed" || row.Health == "healthy" || !strings.Contains(row.Detail, "nothing restarts it") {
		t.Fatalf("a component killed while serve is down: %+v", row)
	}
}

// Finding 9 of #13: the data flows and registrations of destroyed
// components are not shown.
func TestDayTwoStatusShowsNoFlowsOrRegistrationsOfDestroyedComponents(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	out := f.path("out/events.ndjson")
	f.write("pipeline.hcl", dataflowPipeline(f, ex, 200, out))
	f.apply()
	waitFor(t, 60*time.Second, "the relay's counters", func() bool {
		_, flows := f.statusRows()
		return len(flows) > 0
	})
	f.must(0, "destroy", "-auto-approve")
	rows, flows := f.statusRows()
	if len(flows) != 0 {
		t.Fatalf("status shows data flows of destroyed components: %s", flows)
	}
	for a, r := range rows {
		if len(r.RegisteredAs) != 0 {
			t.Fatalf("status shows registrations of destroyed %s: %s", a, r.RegisteredAs)
		}
	}
	if table := f.must(0, "status").out; strings.Contains(table, "Data flows") {
		t.Fatalf("table after destroy:\n%s", table)
	}
}

// mustRow is addr's row of `status -o json`.
func (f *fixture) mustRow(addr string) statusRow {
	f.t.Helper()
	rows, _ := f.statusRows()
	r, ok := rows[addr]
	if !ok {
		f.t.Fatalf("status has no row %s", addr)
	}
	return r
}
