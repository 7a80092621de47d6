pipeline "network" {}

variable "network" {
  default = "testnet"

  validation {
    condition     = var.network == "testnet" || var.network == "pubnet"
    error_message = "The network must be testnet or pubnet."
  }
}

source "ledger" {
  command = ["./bin/ledger"]
  env     = { STELLAR_NETWORK = var.network }
}
