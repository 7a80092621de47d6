# The quickstart pipeline: a counter source emits numbered events, a
# processor transforms each one, and a sink appends them to
# out/events.ndjson (beside this file). Everything runs as local processes
# with the control plane flowctl starts: no Docker needed.
#
#   make demo     # builds flowctl and the example components, then runs:
#   bin/flowctl run examples/quickstart/pipeline.hcl
#
# See docs/quickstart.md for the walk-through.

pipeline "quickstart" {
  executor    = "process"
  description = "counter -> transform -> file, moved by flowctl's relay"
}

source "counter" {
  command  = ["../../bin/counter-source"]
  register = true
  env = {
    COUNTER_RATE               = "5"
    FLOWCTL_HEARTBEAT_INTERVAL = "2s"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
    backoff {
      initial = "500ms"
    }
  }
}

processor "transform" {
  command  = ["../../bin/transform-processor"]
  inputs   = [source.counter]
  register = true
  env = {
    TRANSFORM_SET              = "stage=transformed"
    FLOWCTL_HEARTBEAT_INTERVAL = "2s"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
    backoff {
      initial = "500ms"
    }
  }
}

sink "file" {
  command  = ["../../bin/file-sink"]
  inputs   = [processor.transform]
  register = true
  env = {
    FILE_SINK_PATH             = "out/events.ndjson"
    FLOWCTL_HEARTBEAT_INTERVAL = "2s"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
    backoff {
      initial = "500ms"
    }
  }
}
