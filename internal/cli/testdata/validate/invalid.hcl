pipeline "broken" {
  executor = "docker"
}

source "ledger" {
  image  = "withobsrvr/stellar-live-source:latest"
  inputs = [sink.consumer]
}

processor "ttp" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.ledger]
  env    = { UPSTREAM = "${source.nowhere.address}" }
}

sink "consumer" {
  image  = "withobsrvr/consumer-app:latest"
  inputs = [processor.ttp, processor.missing]

  restart {
    policy = "sometimes"
  }
}
