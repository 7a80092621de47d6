pipeline "ttp" {}

locals {
  url  = "${local.host}:8080"
  host = local.name
  name = split(":", local.url)[0]
}

source "ledger" {
  command = ["./bin/ledger"]
  env = {
    URL = local.url
  }
}
