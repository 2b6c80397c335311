"""The errors of the MQTT link (`gateway.deliver.mqtt`): a short tree under RuntimeFailure."""

from __future__ import annotations

from gateway.errors import RuntimeFailure


class LinkError(RuntimeFailure):
    """The broker is unreachable, refused us, or the connection dropped mid-request."""


class Refused(LinkError):
    """The broker answered, and said no (a PUBACK or SUBACK reason code ≥ 0x80: an ACL
    denies the topic, a quota is exceeded …).  Retrying at once will not help."""
