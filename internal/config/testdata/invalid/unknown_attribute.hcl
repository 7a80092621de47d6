pipeline "ttp" {
  exector = "docker"
}

source "ledger" {
  command = ["./bin/ledger"]
  enviroment = {
    A = "b"
  }
  healthcheck {
    http = "/health"
  }
}

sourse "other" {
  command = ["./bin/other"]
}
