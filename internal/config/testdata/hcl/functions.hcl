# Variables of every kind, locals that refer to each other out of order, and
# the functions a pipeline may call.
pipeline "functions" {}

variable "networks" {
  type    = list(string)
  default = ["testnet", "pubnet"]
}

variable "ports" {
  type    = map(number)
  default = { grpc = 50051, health = 8088 }
}

variable "settings" {
  type = object({
    level   = string
    verbose = optional(bool, false)
  })
  default = { level = "debug" }
}

locals {
  # Defined before the locals it uses.
  endpoint = format("%s:%d", local.host, var.ports["grpc"])
  host     = "ledger.${local.domain}"
  domain   = join(".", ["svc", "local"])
}

locals {
  flags = [for n in var.networks : "--network=${n}"]
}

source "ledger" {
  command = concat(["./bin/ledger"], local.flags)
  env = {
    ENDPOINT  = local.endpoint
    NETWORKS  = jsonencode(var.networks)
    FIRST     = element(var.networks, 0)
    COUNT     = length(var.networks)
    LEVEL     = upper(var.settings.level)
    VERBOSE   = var.settings.verbose
    SAFE      = try(var.settings.missing, "fallback")
    HAS_PORTS = can(var.ports["grpc"])
    KEYS      = join(",", sort(keys(var.ports)))
    REPLACED  = replace("a.b.c", ".", "/")
    TRIMMED   = trimspace("  spaced  ")
    PADDED    = format("%05d", 42)
  }
  health {
    tcp  = true
    port = var.ports["health"]
  }
}
