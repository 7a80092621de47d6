# The quickstart pipeline on Docker, with the images `make images` builds
# from examples/components (flowctl/counter-source, flowctl/transform-processor,
# flowctl/file-sink; FROM scratch, built locally: no registry, no pull).
# The sink writes into out/ beside this file, bind-mounted at /out.
#
#   make images
#   cd examples/docker-local
#   ../../bin/flowctl apply -auto-approve
#
# See examples/README.md.

pipeline "docker-local" {
  executor    = "docker"
  description = "counter -> transform -> file as containers of locally built images"
}

source "counter" {
  image        = "flowctl/counter-source:latest"
  register     = true
  stop_timeout = "2s"
  env = {
    COUNTER_RATE = "5"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
  }
}

processor "transform" {
  image        = "flowctl/transform-processor:latest"
  inputs       = [source.counter]
  register     = true
  stop_timeout = "2s"
  env = {
    TRANSFORM_SET = "stage=transformed"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
  }
}

sink "file" {
  image        = "flowctl/file-sink:latest"
  inputs       = [processor.transform]
  register     = true
  stop_timeout = "2s"
  env = {
    FILE_SINK_PATH = "/out/events.ndjson"
  }
  volume {
    host_path      = "out"
    container_path = "/out"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
  }
}
