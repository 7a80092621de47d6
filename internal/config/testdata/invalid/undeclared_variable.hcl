pipeline "ttp" {
  executor = "process"
}

variable "network" {
  default = "testnet"
}

source "ledger" {
  command = ["./bin/ledger"]
  env = {
    STELLAR_NETWORK = var.netwrk
  }
}
