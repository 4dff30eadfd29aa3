"""`workers bench`: our serving path against the TensorFlow consumer loops a user would write instead.

* :mod:`workers.devtools.bench.workloads` - traffic, the plain TensorFlow per-message step and model-only timing;
* :mod:`workers.devtools.bench.baseline` - the plain consumer loop (one message, one TF call, one result);
* :mod:`workers.devtools.bench.probe` - what is measured: produce->result latency, CPU, RSS, worker histograms;
* :mod:`workers.devtools.bench.runner` - phases (saturation, fixed rates), the table, JSON and the CDF plot.
"""
