pipeline "fan" {
  executor = "docker"
}

source "ledger" {
  image = "withobsrvr/stellar-live-source:latest"
}

source "archive" {
  command  = ["./bin/archive"]
  executor = "process"
}

processor "ttp" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.ledger, source.archive]
  env    = { LIVE_SOURCE_ADDRESS = "${source.ledger.address}" }
}

sink "consumer" {
  image  = "withobsrvr/consumer-app:latest"
  inputs = [processor.ttp]
}

sink "audit" {
  image      = "example/audit:1"
  inputs     = [processor.ttp]
  depends_on = [sink.consumer]
  env        = { ARCHIVE = "${source.archive.address}" }
}
