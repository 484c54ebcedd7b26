"""subway -- a Python client for subway nodes: selective Kafka feeds over one TCP connection."""

from .aio import AsyncClient, Subscription, connect
from .codec import PROTO_VERSION
from .errors import ClientClosed, ConnectionLost, ErrorCode, ProtocolError, ServerError, SubwayError
from .records import Dropped, Live, PubAck, Record, Start
from .sync import BlockingSubscription, Client

__version__ = "0.3.0"

__all__ = [
    "AsyncClient", "BlockingSubscription", "Client", "ClientClosed", "ConnectionLost", "Dropped",
    "ErrorCode", "Live", "PROTO_VERSION", "ProtocolError", "PubAck", "Record", "ServerError", "Start",
    "Subscription", "SubwayError", "connect",
]
