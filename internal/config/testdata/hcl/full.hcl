# Every attribute and block of the native format.
pipeline "stellar-ttp" {
  executor           = "docker"
  description        = "Token transfer events from the Stellar ledger"
  namespace          = "stellar"
  labels             = { team = "data", tier = "prod" }
  annotations        = { "withobsrvr.com/owner" = "data-team" }
  config             = { batch_size = 100, flush = "5s" }
  component_registry = "ghcr.io/withobsrvr"
}

variable "network" {
  type        = string
  default     = "testnet"
  description = "Stellar network to follow"
  validation {
    condition     = contains(["testnet", "pubnet"], var.network)
    error_message = "network must be testnet or pubnet."
  }
}

variable "db_password" {
  type      = string
  default   = "change-me"
  sensitive = true
}

locals {
  passphrase = var.network == "pubnet" ? "Public Global Stellar Network ; September 2015" : "Test SDF Network ; September 2015"
  log_level  = upper("info")
}

source "ledger" {
  type = "stellar-live-source@v1.0.0"
  env = {
    STELLAR_NETWORK    = var.network
    NETWORK_PASSPHRASE = local.passphrase
  }
  config = {
    start_ledger = 5
    backends     = ["rpc", "datastore"]
  }
  health {
    http              = "/health"
    port              = 8088
    interval          = "5s"
    timeout           = "2s"
    start_period      = "30s"
    failure_threshold = 5
    success_threshold = 2
    liveness          = true
  }
  restart {
    policy      = "on-failure"
    max_retries = 10
    backoff {
      initial    = "2s"
      max        = "1m"
      multiplier = 1.5
    }
  }
  resources {
    cpu            = "1"
    memory         = "512Mi"
    cpu_request    = "250m"
    memory_request = "128Mi"
  }
  port {
    name           = "grpc"
    container_port = 50051
    host_port      = 50051
  }
  volume {
    name           = "data"
    host_path      = "./data/ledger"
    container_path = "/data"
  }
  output_event_types = ["stellar.ledger.v1"]
}

processor "ttp" {
  image    = "withobsrvr/ttp-processor:latest"
  args     = ["--log-level", lower(local.log_level)]
  inputs   = [source.ledger]
  replicas = 2
  env = {
    SOURCE_ADDRESS = source.ledger.address
    HEALTH_URL     = "http://${source.ledger.address}:${source.ledger.health_port}/health"
    LOG_LEVEL      = local.log_level
  }
  health {
    tcp  = true
    port = 8089
  }
  input_event_types  = ["stellar.ledger.v1"]
  output_event_types = ["stellar.token_transfer.v1"]
  stop_timeout       = "30s"
}

sink "postgres" {
  executor   = "process"
  command    = ["./bin/postgres-sink", "--table", "transfers"]
  inputs     = [processor.ttp]
  depends_on = [source.ledger]
  secrets    = ["db-password"]
  env = {
    DATABASE_URL = "postgres://ttp:${var.db_password}@localhost:5432/ttp"
    UPSTREAM     = processor.ttp.address
  }
  health {
    exec = ["pg_isready", "-h", "localhost"]
  }
  restart {
    policy = "always"
  }
  resources {
    cpu    = 0.5
    memory = 268435456
  }
  port {
    container_port = 9100
    protocol       = "UDP"
  }
  volume {
    host_path      = "/var/run/postgresql"
    container_path = "/var/run/postgresql"
    read_only      = true
  }
}
