pipeline "ttp" {}

variable "upstream" {
  default = "source.ledger"
}

source "ledger" {
  command = ["./bin/ledger"]
}

processor "ttp" {
  command    = ["./bin/ttp"]
  inputs     = [source.ledger, "source.ledger", var.upstream, source]
  depends_on = source.ledger
}
