pipeline "ttp" {}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "a" {
  command = ["./bin/a"]
  inputs  = [source.ledger, processor.b]
}

processor "b" {
  command = ["./bin/b"]
  inputs  = [processor.a]
}
