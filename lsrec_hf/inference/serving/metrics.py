"""Request counts and a latency histogram, in the Prometheus text format (`GET /metrics`)."""

import threading
from collections import Counter

# seconds; Prometheus' default buckets
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = Counter()  # (method, route, status) -> count
        self.buckets = Counter()  # (route, upper bound) -> count of requests at most that slow
        self.latency_sum = Counter()
        self.latency_count = Counter()

    def observe(self, method, route, status, seconds):
        with self._lock:
            self.requests[method, route, status] += 1
            for bound in LATENCY_BUCKETS:
                if seconds <= bound:
                    self.buckets[route, bound] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def render(self, batch_sizes=(), calls=0):
        with self._lock:
            lines = ["# HELP lsrec_requests_total HTTP requests by method, route and status.",
                     "# TYPE lsrec_requests_total counter"]
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'lsrec_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
            lines += ["# HELP lsrec_request_seconds Request latency by route.",
                      "# TYPE lsrec_request_seconds histogram"]
            for route in sorted(self.latency_count):
                for bound in LATENCY_BUCKETS:
                    lines.append(f'lsrec_request_seconds_bucket{{route="{route}",le="{bound}"}} '
                                 f'{self.buckets[route, bound]}')
                lines.append(f'lsrec_request_seconds_bucket{{route="{route}",le="+Inf"}} {self.latency_count[route]}')
                lines.append(f'lsrec_request_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}')
                lines.append(f'lsrec_request_seconds_count{{route="{route}"}} {self.latency_count[route]}')
        lines += ["# HELP lsrec_pipeline_calls_total Pipeline calls made for /recommend (one per micro-batch).",
                  "# TYPE lsrec_pipeline_calls_total counter", f"lsrec_pipeline_calls_total {calls}",
                  "# HELP lsrec_batch_size_max Largest micro-batch among the latest 1000.",
                  "# TYPE lsrec_batch_size_max gauge", f"lsrec_batch_size_max {max(batch_sizes, default=0)}"]
        return "\n".join(lines) + "\n"
