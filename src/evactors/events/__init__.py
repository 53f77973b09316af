"""The events pipeline: normalized events, and the actors that make and deliver them."""

from .model import EventType, SystemEvent

__all__ = ["EventType", "SystemEvent"]
