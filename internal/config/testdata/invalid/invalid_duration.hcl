pipeline "ttp" {}

source "ledger" {
  command      = ["./bin/ledger"]
  stop_timeout = "ten seconds"
  health {
    http     = "/health"
    interval = 5
  }
  restart {
    backoff {
      initial = "1 s"
    }
  }
}
