package plan

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/golden"
)

func TestMarkdownPlanMatchesGolden(t *testing.T) {
	old := loadPipeline(t, basePipeline)
	changed := loadPipeline(t, strings.Replace(strings.Replace(basePipeline, `"fast"`, `"slow"`, 1), `default   = "hunter2"`, `default   = "hunter3"`, 1))
	prov := newFake()
	a, b, c := old.Components[0], old.Components[1], old.Components[2]
	recs := []*state.Record{
		record(a, run(prov, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusRunning),
		record(b, run(prov, b.Address(), "fpb", b.SpecHash(testSpecKey), true), state.StatusRunning),
		record(c, run(prov, c.Address(), "fpc", c.SpecHash(testSpecKey), false), state.StatusRunning),
	}
	prov.Put(providers.Observed{Address: "sink.elsewhere", Exists: true, Running: true, SpecHash: "h", Pipeline: "demo", Lineage: "L0", Fingerprint: "fpx"})
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey,
		Desired: changed, Meta: state.Meta{Lineage: "0f3c9a1e-lineage", Pipeline: "demo", Serial: 12},
		Records: recs, Providers: providers.NewRegistry(prov),
		ControlPlane: &ControlPlaneSeen{Managed: true, Detail: "it is not running: pid 4641 exited", Listen: "127.0.0.1:7400"},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(p, FileOptions{PipelineFile: "pipeline.hcl", Records: recs, Now: time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	RenderMarkdown(&out, f)
	md := out.String()
	if strings.Contains(md, "hunter") {
		t.Fatalf("a sensitive value was rendered:\n%s", md)
	}
	if strings.Count(md, "<details>") != strings.Count(md, "</details>") || !strings.Contains(md, "<details>") {
		t.Fatalf("unbalanced or no collapsible blocks:\n%s", md)
	}
	golden.Check(t, filepath.Join("testdata", "plan.md.golden"), []byte(md))
}

func TestMarkdownEscapesWhatTheReviewerDidNotWrite(t *testing.T) {
	if got := mdText("a <script>|x` *b*"); got != `a &lt;script&gt;\|x\`+"`"+` \*b\*` {
		t.Errorf("mdText = %q", got)
	}
	if got := mdFence("x ```` y"); got != "`````" {
		t.Errorf("a fence inside a value: %q", got)
	}
}
