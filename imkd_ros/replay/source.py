"""Open a recording for the replay, with clear errors, and read what is readable of a damaged one.

Why: a recording cut short (disk full, power loss, a copy in progress) still holds good data, and
an operator needs to know where it stopped, not a traceback. rosbags refuses an MCAP without its
footer; then the file is streamed record by record (mcap's StreamReader) up to the first damaged
record, and ``truncated`` says where reading stopped. Other problems (no such path, an empty or
non-bag directory, no camera topics) raise RecordingError with one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader


class RecordingError(ValueError):
    """A recording the replay cannot use; the message is one line naming the path."""


@dataclass
class Connection:
    id: int
    topic: str
    msgtype: str
    msgcount: int = 0


class _StreamedMcap:
    """The readable prefix of a damaged MCAP file, as (connection, log time, raw CDR) tuples.

    Two streaming passes (bounded memory): the first finds the channels and where reading stops,
    the second yields the messages in file order up to there."""

    def __init__(self, path: Path, typestore: Any) -> None:
        self.path = path
        self.typestore = typestore
        self.connections: list[Connection] = []
        self.truncated: dict[str, Any] | None = None
        self._conns: dict[int, Connection] = {}
        self._scan()

    def _records(self) -> Iterator[Any]:
        with open(self.path, "rb") as fh:
            yield from StreamReader(fh).records

    def _scan(self) -> None:
        schemas: dict[int, str] = {}
        n, last_t, error = 0, None, "no footer"
        try:
            for rec in self._records():
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    self._conns[rec.id] = Connection(len(self._conns) + 1, rec.topic, schemas.get(rec.schema_id, ""))
                elif isinstance(rec, Message) and rec.channel_id in self._conns:
                    self._conns[rec.channel_id].msgcount += 1
                    n, last_t = n + 1, rec.log_time
        except Exception as exc:  # the first damaged record ends the readable part
            error = f"{type(exc).__name__} {exc}".strip()
        self.truncated = {"file": str(self.path), "messages_read": n, "last_log_time_ns": last_t, "error": error}
        self.connections = list(self._conns.values())

    def messages(self) -> Iterator[tuple[Connection, int, bytes]]:
        left = self.truncated["messages_read"] if self.truncated else 0
        try:
            for rec in self._records():
                if left <= 0:
                    return
                if isinstance(rec, Message) and rec.channel_id in self._conns:
                    left -= 1
                    yield self._conns[rec.channel_id], rec.log_time, bytes(rec.data)
        except Exception:  # same stop as the scan
            return

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.typestore.deserialize_cdr(raw, msgtype)

    def __enter__(self) -> _StreamedMcap:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Anyreader:
    """rosbags' AnyReader with ``truncated`` = None (an intact recording)."""

    def __init__(self, reader: Any) -> None:
        self._r = reader
        self.truncated: dict[str, Any] | None = None

    @property
    def connections(self) -> Sequence[Any]:
        return self._r.connections

    def messages(self) -> Iterator[tuple[Any, int, bytes]]:
        return self._r.messages()

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._r.deserialize(raw, msgtype)

    def __enter__(self) -> _Anyreader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._r.close()


def open_recording(bag: Path, typestore: Any, camera_topics: Sequence[str] = ()) -> Any:
    """A reader (context manager: connections, messages(), deserialize(), truncated) for ``bag``.

    RecordingError when nothing usable is there, including a recording with none of
    ``camera_topics`` (the detector would have nothing to run on)."""
    bag = Path(bag)
    if not bag.exists():
        raise RecordingError(f"recording {bag}: no such file or directory")
    if bag.is_dir() and not any(bag.iterdir()):
        raise RecordingError(f"recording {bag}: empty directory (no metadata.yaml, no .mcap/.db3)")
    try:
        reader: Any = AnyReader([bag], default_typestore=typestore)
        reader.open()
        src: Any = _Anyreader(reader)
    except Exception as exc:
        mcaps = sorted(bag.glob("*.mcap")) if bag.is_dir() else ([bag] if bag.suffix == ".mcap" else [])
        if not mcaps:
            raise RecordingError(f"recording {bag}: cannot be opened ({type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from exc
        src = _StreamedMcap(mcaps[0], typestore)
        if not src.connections:
            raise RecordingError(f"recording {bag}: {mcaps[0].name} is damaged before its first message "
                                 f"({src.truncated['error']})") from exc
    if camera_topics:
        topics = {c.topic for c in src.connections if getattr(c, "msgcount", 1) > 0}
        if not topics & set(camera_topics):
            src.__exit__(None, None, None)
            raise RecordingError(f"recording {bag}: none of the camera topics {list(camera_topics)} "
                                 f"with messages (it has {sorted(topics)}): nothing to detect on")
    return src
