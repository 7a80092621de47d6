pipeline "ttp" {}

source "ledger" {
  image    = "withobsrvr/stellar-live-source:latest"
  executor = "docker"
  resources {
    cpu            = "two cores"
    memory         = "256MB"
    cpu_request    = 0.0001
    memory_request = true
  }
}
