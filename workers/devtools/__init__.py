"""Development tools, apart from the serving runtime: the embedded broker (and its TLS front), the demo and
the benchmark runner. A worker image does not need them (deploy/Dockerfile leaves them out)."""
