pipeline "ttp" {
  labels = ["a", "b"]
}

source "ledger" {
  command  = "./bin/ledger --flag"
  replicas = "two"
  env      = ["STELLAR_NETWORK=testnet"]
  port {
    container_port = "grpc"
  }
}
