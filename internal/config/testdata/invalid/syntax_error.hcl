pipeline "ttp" {
  executor = "docker"

source "ledger" {
  command = ["./bin/ledger"]
}
