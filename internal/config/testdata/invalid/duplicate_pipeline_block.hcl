pipeline "ttp" {}

pipeline "other" {}

source "ledger" {
  command = ["./bin/ledger"]
}
