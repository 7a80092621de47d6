pipeline "ttp" {}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "ttp" {
  command = ["./bin/ttp"]
  inputs  = [source.ledger, source.legder]
}

sink "consumer" {
  command    = ["./bin/consumer"]
  inputs     = [processor.ttp]
  depends_on = [processor.missing]
}
