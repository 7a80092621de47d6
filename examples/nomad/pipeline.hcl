# The TTP pipeline as Nomad jobs, one per component, each with CPU and
# memory reserved (cpu_request, memory_request) and capped (cpu, memory).

pipeline "nomad-ttp" {
  executor  = "nomad"
  namespace = "stellar"
  labels    = { team = "data" }
}

source "stellar-live-source" {
  image = "withobsrvr/stellar-live-source:latest"
  env   = { STELLAR_NETWORK = "testnet" }

  health {
    http = "/health"
    port = 8088
  }

  resources {
    cpu            = "500m"
    memory         = "256Mi"
    cpu_request    = "250m"
    memory_request = "128Mi"
  }
}

processor "ttp-processor" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.stellar-live-source]
  env    = { LIVE_SOURCE_ADDRESS = "${source.stellar-live-source.address}" }

  resources {
    cpu            = "500m"
    memory         = "256Mi"
    cpu_request    = "250m"
    memory_request = "128Mi"
  }
}

sink "consumer-app" {
  image    = "withobsrvr/consumer-app:latest"
  inputs   = [processor.ttp-processor]
  replicas = 2

  resources {
    cpu            = "250m"
    memory         = "128Mi"
    cpu_request    = "100m"
    memory_request = "64Mi"
  }
}
