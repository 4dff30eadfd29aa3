"""What workload authors build handlers from: JSON decoding with DLQ reason codes, the result encoder."""
