"""Adapters for the camera, decoders, thermometer and signals: the only home of device libraries."""
