pipeline "ttp" {}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "ledger" {
  command = ["./bin/ttp"]
  inputs  = [source.ledger]
}
