package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// dockerDataflowPipeline is dataflowPipeline on Docker: the example
// components as images FROM scratch, the sink writing into out, a host
// folder bind-mounted at /out.
func dockerDataflowPipeline(df *dockerFixture, images map[string]string, count int, out string) string {
	return fmt.Sprintf(`pipeline %q {
  executor = "docker"
}

source "counter" {
  image        = %q
  register     = true
  stop_timeout = "2s"
  env = {
    COUNTER_RATE  = "0"
    COUNTER_COUNT = "%d"
  }
  health {
    http = "/health"
  }
}

processor "transform" {
  image        = %q
  inputs       = [source.counter]
  register     = true
  stop_timeout = "2s"
  env = {
    TRANSFORM_SET = "stage=transformed"
  }
  health {
    http = "/health"
  }
}

sink "file" {
  image        = %q
  inputs       = [processor.transform]
  register     = true
  stop_timeout = "2s"
  env = {
    FILE_SINK_PATH = "/out/events.ndjson"
  }
  volume {
    host_path      = %q
    container_path = "/out"
  }
  health {
    http = "/health"
  }
}
`, df.name, images["counter-source"], count, images["transform-processor"], images["file-sink"], out)
}

// TestDockerEventsFlowFromSourceThroughProcessorToSink: the example
// components as containers, serve's relay reaching each at its address on
// the pipeline network and the components reaching the control plane
// through the host gateway; the sink's file, on a bind-mounted host
// folder, holds every event once, in order.
func TestDockerEventsFlowFromSourceThroughProcessorToSink(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	images := map[string]string{}
	for _, name := range []string{"counter-source", "transform-processor", "file-sink"} {
		images[name] = dockertest.ExampleImage(t, df.cli, name)
	}
	const n = 10_000
	out := df.path("out")
	if err := os.MkdirAll(out, 0o777); err != nil {
		t.Fatal(err)
	}
	df.write("pipeline.hcl", dockerDataflowPipeline(df, images, n, out))
	df.apply()
	df.assertDockerConverged([]string{"processor.transform", "sink.file", "source.counter"})

	file := out + "/events.ndjson"
	waitFor(t, 120*time.Second, "every event at the sink", func() bool { return len(sinkLines(t, file)) >= n })
	time.Sleep(500 * time.Millisecond) // anything doubled would show now
	assertOncePerSource(t, sinkLines(t, file), "counter", n)

	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}
