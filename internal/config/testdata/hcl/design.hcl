# flowctl's reference example (a variable, health, restart, an executor
# override), its restart block spread over lines as HCL requires.
pipeline "ttp" {
  executor = "docker" # default for every component; a component may override
}

variable "network" { default = "testnet" }

source "ledger" {
  image = "withobsrvr/stellar-live-source:latest"
  env   = { STELLAR_NETWORK = var.network }
  health {
    http = "/health"
    port = 8088
  }
  restart {
    policy      = "on-failure"
    max_retries = 5
  }
}

processor "ttp" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.ledger]
}

sink "consumer" {
  command  = ["./bin/consumer"]
  executor = "process"
  inputs   = [processor.ttp]
}
