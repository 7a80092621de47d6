pipeline "ttp" {}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "ttp" {
  command = ["./bin/ttp"]
  inputs  = [source.ledger]
  env = {
    UPSTREAM = "http://${source.ledger.adress}"
    OTHER    = sink.nowhere.address
  }
}
