"""records.py -- what a subscription yields (Record, Dropped, Live) and where it starts (Start)."""

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from . import codec
from .errors import ErrorCode, SubwayError

Headers = List[Tuple[str, Optional[bytes]]]


@dataclass
class Record:
    """One Kafka record of a subscription's feed. key and value are bytes,
    None when Kafka has none (a value of None is a tombstone). timestamp is
    in ms since the Unix epoch, -1 when Kafka has none. headers are
    (name, value) pairs in record order."""

    __slots__ = ("topic", "key", "value", "partition", "offset", "timestamp", "headers")
    topic: str
    key: Optional[bytes]
    value: Optional[bytes]
    partition: int
    offset: int
    timestamp: int
    headers: Headers


@dataclass
class Dropped:
    """A gap in a subscription's records: `count` records of its feed that
    this client will not get, exactly here in the stream (PROTOCOL.md 3.11:
    the client read too slowly, or Kafka no longer holds them)."""

    topic: str
    key: Optional[bytes]
    count: int


@dataclass
class Live:
    """The subscription caught up and now follows the live feed; positions
    maps each partition it reads to the offset of its next record."""

    topic: str
    key: Optional[bytes]
    positions: Dict[int, int] = field(default_factory=dict)


Item = Union[Record, Dropped, Live]


class PubAck(NamedTuple):
    """Where Kafka wrote a published record."""

    partition: int
    offset: int


class Start:
    """Where a subscription starts in Kafka's log (PROTOCOL.md 3.3, node
    version 2). Without one it starts live, at the log end.

        Start.beginning()            each partition's oldest record
        Start.last(100)              the last 100 records of each partition
        Start.offset(5000)           offset 5000 in every partition
        Start.timestamp(ms)          the first record at or after ms (epoch ms)
        Start.positions({0: 12})     partition 0 at offset 12 (the next record
                                     wanted); partitions not listed start live
    """

    __slots__ = ("mode", "arg")

    def __init__(self, mode: int, arg: Union[int, Dict[int, int]]):
        self.mode = mode
        self.arg = arg

    @classmethod
    def beginning(cls) -> "Start":
        return cls(codec.START_BEGINNING, 0)

    @classmethod
    def last(cls, n: int) -> "Start":
        return cls(codec.START_LAST, _count("last", n))

    @classmethod
    def offset(cls, offset: int) -> "Start":
        return cls(codec.START_OFFSET, _count("offset", offset))

    @classmethod
    def timestamp(cls, ms: int) -> "Start":
        if not isinstance(ms, int) or not codec.INT64_MIN <= ms <= codec.INT64_MAX:
            raise SubwayError(ErrorCode.ARG, "Start.timestamp takes ms since the epoch as an int64")
        return cls(codec.START_TIMESTAMP, int(ms))

    @classmethod
    def positions(cls, positions: Mapping[int, int]) -> "Start":
        ps: Dict[int, int] = {}
        for p, o in dict(positions).items():
            if not isinstance(p, int) or not 0 <= p <= codec.UINT32_MAX:
                raise SubwayError(ErrorCode.ARG, "Start.positions: partition %r is not a uint32" % (p,))
            ps[p] = _count("positions", o)
        return cls(codec.START_POSITIONS, ps)

    def wire(self) -> list:
        """The SUBSCRIBE start field, [mode, arg]."""
        if self.mode == codec.START_POSITIONS:
            return [self.mode, sorted(self.arg.items())]  # type: ignore[union-attr]
        return [self.mode, self.arg]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Start) and (self.mode, self.arg) == (other.mode, other.arg)

    def __repr__(self) -> str:
        name = codec.START_NAMES.get(self.mode, str(self.mode)).lower()
        return "Start.%s()" % name if self.mode == codec.START_BEGINNING else "Start.%s(%r)" % (name, self.arg)


def _count(what: str, n: int) -> int:
    if not isinstance(n, int) or not 0 <= n <= codec.INT64_MAX:
        raise SubwayError(ErrorCode.ARG, "Start.%s takes an integer >= 0, not %r" % (what, n))
    return int(n)
