package cli

import (
	"strings"
	"testing"
)

func TestGraphDotDrawsLevelsLeftToRight(t *testing.T) {
	r := run(t, "graph", "--format", "dot", "testdata/graph/pipeline.hcl")
	r.wantCode(t, 0)
	assertGolden(t, "graph/pipeline.dot", r.out)
}

func TestGraphMermaidDrawsLevelsLeftToRight(t *testing.T) {
	r := run(t, "graph", "--format", "mermaid", "testdata/graph/pipeline.hcl")
	r.wantCode(t, 0)
	assertGolden(t, "graph/pipeline.mermaid", r.out)
}

func TestGraphTextListsLevelsWithExecutorsAndUpstreams(t *testing.T) {
	r := run(t, "graph", example("docker-ttp/pipeline.hcl"))
	r.wantCode(t, 0)
	want := `pipeline docker-ttp: 3 components in 3 levels

level 0
  source.stellar-live-source (docker)

level 1
  processor.ttp-processor (docker) <- source.stellar-live-source

level 2
  sink.consumer-app (docker) <- processor.ttp-processor
`
	if r.out != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.out, want)
	}
}

func TestGraphRejectsAnUnknownFormat(t *testing.T) {
	r := run(t, "graph", "--format", "png", example("docker-ttp/pipeline.hcl"))
	r.wantCode(t, 1)
	if !strings.Contains(r.err, `--format "png"`) {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestGraphOfAnInvalidPipelinePrintsItsErrors(t *testing.T) {
	r := run(t, "graph", "testdata/validate/invalid.hcl")
	r.wantCode(t, 1)
	if r.out != "" || !strings.Contains(r.err, "Dependency cycle") || !strings.Contains(r.err, "is not valid") {
		t.Errorf("stdout: %q\nstderr: %s", r.out, r.err)
	}
}
