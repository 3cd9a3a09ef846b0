"""The pipeline: one module per `dvc.yaml` stage (ingest -> validate -> split -> train ->
evaluate), each a pure core function plus a thin `main` that reads, calls it and writes."""
