pipeline "ttp" {
  executor = "swarm"
}

variable "replicas" {
  type    = number
  default = 2
}

source "ledger" {
  type         = "stellar-live-source@v1.0.0"
  executor     = "docker"
  replicas     = var.replica
  stop_timeout = "soon"
  health {
    exec = []
  }
  resources {
    cpu    = "500m"
    memory = "lots"
  }
  port {
    container_port = 50051
    host_port      = 50051
  }
}

processor "ttp" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.ledger, processor.nope]
  port {
    container_port = 8080
    host_port      = 50051
  }
  restart {
    policy      = "sometimes"
    max_retries = -3
  }
}

sink "consumer" {
  command = ["./bin/consumer"]
  image   = "consumer:latest"
  env = {
    UPSTREAM = "${processor.ttp.address}/events"
    SELF     = sink.consumer.port
  }
}
