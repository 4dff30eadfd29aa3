"""The plain consumer loop a user would write instead of this project: one message, one TensorFlow
call, one result. Run by ``workers bench`` as its own process (so it has its own interpreter, like
the worker it is compared with)::

    python -m workers.devtools.bench.baseline NAME tf_function --bootstrap HOST:PORT --input T --output T --group G

Each result carries the ``source.partition``/``source.offset`` headers (as the worker's do), so the
benchmark can time it, and a ``bench.step_s`` header with its time from decode to encoded result.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import confluent_kafka as ck

from workers import registry
from workers.devtools.bench.probe import FETCH_WAIT_MS
from workers.devtools.bench.workloads import MODES
from workers.plugin import load_object


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=[name for name, spec in registry.workloads().items() if spec.bench])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)

    step = load_object(registry.get(args.workload).bench).tf_step(args.mode)
    consumer = ck.Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                            "auto.offset.reset": "earliest", "enable.auto.commit": True,
                            "fetch.wait.max.ms": FETCH_WAIT_MS})
    producer = ck.Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0})
    consumer.subscribe([args.input])
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while running:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        started = time.perf_counter()
        result = step(message.key(), message.value() or b"", dict(message.headers() or []))
        producer.produce(args.output, result, key=message.key(), headers=[
            ("source.partition", str(message.partition()).encode()),
            ("source.offset", str(message.offset()).encode()),
            ("bench.step_s", f"{time.perf_counter() - started:.6f}".encode()),
        ])
        producer.poll(0)
    producer.flush(10)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
