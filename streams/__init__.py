"""Runtime around cameras: sources (OpenCV, reconnect), the per-camera loop, motion gating, the worker
process that serves many cameras, leases for scale-out, metrics, replay and benchmarks. See docs/streams.md.
"""
