pipeline "ttp" {}

variable "network" {
  description = "the Stellar network"
}

variable "token" {
  type      = string
  sensitive = true
}

source "ledger" {
  command = ["./bin/ledger"]
  env = {
    STELLAR_NETWORK = var.network
    TOKEN           = var.token
  }
}
