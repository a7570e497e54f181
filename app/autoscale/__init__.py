"""Autoscale: demand metering, a forecast that reads key trades as a leading indicator, and the signal
published to inference nodes (websocket), KEDA (HTTP) and Prometheus."""
