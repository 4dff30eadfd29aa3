"""`workers bench`: our serving path against the TensorFlow consumer loops a user would write instead.

* :mod:`workers.bench.workloads` - traffic, the plain TensorFlow per-message step and model-only timing;
* :mod:`workers.bench.baseline` - the plain consumer loop (one message, one TF call, one result);
* :mod:`workers.bench.probe` - what is measured: produce->result latency, CPU, RSS, worker histograms;
* :mod:`workers.bench.runner` - phases (saturation, fixed rates), the table, JSON and the CDF plot.
"""
