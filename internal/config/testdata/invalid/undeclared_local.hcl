pipeline "ttp" {}

locals {
  upstream = "http://${source.ledger.address}"
}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "ttp" {
  command = ["./bin/ttp"]
  inputs  = [source.ledger]
  env = {
    UPSTREAM = local.upstrem
  }
}
