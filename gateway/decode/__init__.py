"""Untrusted bytes and messages to domain values: beacon frames, the privacy filter, inbound
MQTT payloads.  Pure."""
