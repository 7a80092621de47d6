# The TTP pipeline on Docker: a live Stellar ledger source feeds the
# token-transfer processor, whose events a consumer app serves on port 3000.
# pipeline.yaml beside this file is the same pipeline in the flowctl/v1 YAML
# format; both load to the same canonical form.

pipeline "docker-ttp" {
  executor    = "docker"
  description = "Stellar token transfers, live from testnet, on Docker"
}

variable "network" {
  description = "The Stellar network to follow."
  default     = "testnet"

  validation {
    condition     = var.network == "testnet" || var.network == "pubnet" || var.network == "futurenet"
    error_message = "The network must be testnet, pubnet or futurenet."
  }
}

locals {
  images = "withobsrvr"
}

source "stellar-live-source" {
  image = "${local.images}/stellar-live-source:latest"
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

processor "ttp-processor" {
  image  = "${local.images}/ttp-processor:latest"
  inputs = [source.stellar-live-source]
  env = {
    # Older components dial their upstream themselves; flowctl fills in the
    # address once the source runs.
    LIVE_SOURCE_ADDRESS = "${source.stellar-live-source.address}"
    STELLAR_NETWORK     = var.network
  }
}

sink "consumer-app" {
  image  = "${local.images}/consumer-app:latest"
  inputs = [processor.ttp-processor]

  port {
    name           = "http"
    container_port = 3000
    host_port      = 3000
  }
}
