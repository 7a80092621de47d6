pipeline "ttp" {}

source "ledger" {
  command = ["./bin/ledger"]
  health {
    http = "/health"
    tcp  = true
    port = 8088
  }
}

sink "consumer" {
  command = ["./bin/consumer"]
  inputs  = [source.ledger]
  health {
    port = 9090
  }
}
