pipeline "ttp" {}

variable "network" {
  default = "devnet"
  validation {
    condition     = contains(["testnet", "pubnet"], var.network)
    error_message = "network must be testnet or pubnet."
  }
}

source "ledger" {
  command = ["./bin/ledger"]
  env = {
    STELLAR_NETWORK = var.network
  }
}
