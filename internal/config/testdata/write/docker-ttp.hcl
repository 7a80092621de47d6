pipeline "docker-ttp" {
  executor    = "docker"
  description = "Stellar token transfers, live from testnet, on Docker"
}

source "stellar-live-source" {
  image = "withobsrvr/stellar-live-source:latest"
  env   = { STELLAR_NETWORK = "testnet" }

  health {
    http = "/health"
    port = 8088
  }
}

processor "ttp-processor" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.stellar-live-source]
  env = {
    LIVE_SOURCE_ADDRESS = "${source.stellar-live-source.address}"
    STELLAR_NETWORK     = "testnet"
  }
}

sink "consumer-app" {
  image  = "withobsrvr/consumer-app:latest"
  inputs = [processor.ttp-processor]

  port {
    name           = "http"
    container_port = 3000
    host_port      = 3000
  }
}
