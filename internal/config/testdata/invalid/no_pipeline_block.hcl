source "ledger" {
  command = ["./bin/ledger"]
}
