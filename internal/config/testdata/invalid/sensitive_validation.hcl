pipeline "ttp" {}

variable "api_key" {
  default   = "short-secret"
  sensitive = true
  validation {
    condition     = length(var.api_key) >= 32
    error_message = "api_key must be at least 32 characters."
  }
}

variable "port" {
  type      = number
  default   = "not-a-port-secret"
  sensitive = true
}

source "ledger" {
  command = ["./bin/ledger"]
  env = {
    API_KEY = var.api_key
    PORT    = var.port
  }
  stop_timeout = var.api_key
}
