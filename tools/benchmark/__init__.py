"""`python -m trikv.tools.benchmark`: etcd's tools/benchmark for trikv and etcd, through any client surface.

Workloads (`workloads.py`) run in several worker processes (`worker.py`, started by `runner.py`) over one of
three surfaces (`surfaces.py`: the CBOR WebSocket client, the JSON gateway over raw HTTP/1.1 in
`httpconn.py`, gRPC over h2 in `grpcconn.py`); the parent merges raw latencies into a row (`report.py`)
with server CPU per op and the generator's CPU share. `sidebyside.py` runs every workload on fresh trikv
and etcd clusters (`clusters.py`), interleaved, and prints the Markdown table.
"""
