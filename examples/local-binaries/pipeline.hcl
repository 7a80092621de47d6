# The TTP pipeline as local processes: no Docker needed, only the three
# binaries under ./bin (paths are relative to this folder). Each serves its
# health check on its own port.

pipeline "local-binaries" {
  executor    = "process"
  description = "Stellar token transfers from local binaries"
}

source "stellar-live-source" {
  command = ["./bin/stellar-live-source"]
  env     = { STELLAR_NETWORK = "testnet" }

  health {
    http = "/health"
    port = 9090
  }
}

processor "ttp-processor" {
  command = ["./bin/ttp-processor"]
  inputs  = [source.stellar-live-source]
  env = {
    LIVE_SOURCE_ADDRESS = "${source.stellar-live-source.address}"
    STELLAR_NETWORK     = "testnet"
  }

  health {
    http = "/health"
    port = 9091
  }
}

sink "consumer-app" {
  command = ["./bin/consumer-app"]
  args    = ["--port", "3000"]
  inputs  = [processor.ttp-processor]
}
