"""Zipkin v1 JSON (``POST /api/v1/spans``: a list of v1 spans) -> the v2 spans ``zipkin_json`` decodes.

zipkin-js's HTTP transport still sends v1 unless told otherwise (``jsonEncoder`` defaults to ``JSON_V1``), as do
older Brave and Finagle reporters. A v1 span has no kind, no shared flag and no endpoints of its own. They are
told by "core" annotations (``cs``/``cr`` a client, ``sr``/``ss`` a server, ``ms``/``mr`` messaging,
``ws``/``wr`` their wire times) and by address binary annotations (``ca``/``sa``/``ma``), each carrying the
endpoint of the process that recorded it. The conversion follows Zipkin's own (``zipkin2.v1.V1SpanConverter``),
so spans read here as Zipkin's server reads them:

- a v1 span becomes one v2 span per service that recorded part of it: a client and a server half reported as one
  span come apart into two, the server half marked ``shared`` (its id is then made its own by the v2 decoder);
- a span's time comes from its ``timestamp`` and ``duration`` when both are set, otherwise from its core
  annotations (a server half's always from ``sr`` and ``ss``);
- string binary annotations are tags (a ``lc`` marker with no text excepted); the rest of a binary annotation's
  values carry nothing but an address.

A v1 span this cannot read (an annotation without a time, a binary annotation without a key) is rejected alone,
as an invalid v2 span is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spyglass.receivers.decoders.limits import RejectedSpans, load_json, preview
from spyglass.receivers.decoders.result import (
    DecodeResult,
    Problem,
    RequestMalformed,
    SpanRejected,
    only_decode_errors,
)
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_spans

__all__ = ["decode_zipkin_v1_json", "v2_spans"]

#: Annotations that tell a span's kind and times rather than being events, when an endpoint recorded them.
_CORE = frozenset({"cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr"})
_KIND_OF = {
    "cs": "CLIENT",
    "cr": "CLIENT",
    "sr": "SERVER",
    "ss": "SERVER",
    "ms": "PRODUCER",
    "mr": "CONSUMER",
}
#: Binary annotations whose ``true`` value marks the endpoint as an address: the client's, the server's, the broker's.
_ADDRESSES = ("ca", "sa", "ma")


@only_decode_errors("Zipkin v1 JSON")
def decode_zipkin_v1_json(body: bytes) -> DecodeResult:
    """Decode a Zipkin v1 JSON list of spans; raises ``DecodeError`` if nothing in it can be accepted."""
    spans = load_json(body, list, "a JSON array of Zipkin v1 spans")
    rejected = RejectedSpans()
    converted: list[Any] = []
    labels: list[str] = []
    for i, span in enumerate(spans):
        try:
            parts = v2_spans(span)
        except Problem as problem:
            rejected.add(problem.at(f"spans[{i}]"))
            continue
        converted += parts
        labels += [f"spans[{i}]"] * len(parts)
    return decode_zipkin_spans(converted, rejected, labels)


@dataclass
class _Annotation:
    timestamp: int
    value: str
    endpoint: dict[str, Any] | None


@dataclass
class _Part:
    """One v2 span being made of a v1 span: what one endpoint (one service) recorded of it."""

    local: dict[str, Any] | None
    kind: str | None = None
    timestamp: int | None = None
    duration: int | None = None
    remote: dict[str, Any] | None = None
    shared: bool = False
    annotations: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def annotate(self, annotation: _Annotation) -> None:
        self.annotations.append({"timestamp": annotation.timestamp, "value": annotation.value})

    def span(self, source: dict[str, Any]) -> dict[str, Any]:
        span: dict[str, Any] = {"traceId": source.get("traceId"), "id": source.get("id")}
        for name in ("parentId", "name", "debug"):
            if source.get(name) is not None:
                span[name] = source[name]
        optional = {
            "kind": self.kind,
            "timestamp": self.timestamp or None,  # 0 is Zipkin's "unset"
            "duration": self.duration or None,
            "localEndpoint": self.local,
            "remoteEndpoint": self.remote,
        }
        span.update((name, value) for name, value in optional.items() if value is not None)
        if self.annotations:
            span["annotations"] = self.annotations
        if self.tags:
            span["tags"] = self.tags
        if self.shared:
            span["shared"] = True
        return span


def v2_spans(source: Any) -> list[dict[str, Any]]:
    """The v2 spans (as JSON reads them) a v1 span stands for: one, or one per service that recorded part of it."""
    if type(source) is not dict:
        raise RequestMalformed(f"expected a span object, got {preview(source)}")
    return _Conversion(source).spans()


class _Conversion:
    """One v1 span's conversion: its parts by endpoint, and the core annotations seen."""

    def __init__(self, source: dict[str, Any]) -> None:
        self.source = source
        self.timestamp = _micros(source.get("timestamp"), "timestamp")
        self.duration = _micros(source.get("duration"), "duration")
        self.first = _Part(None)
        self.others: list[_Part] = []
        self.core: dict[str, _Annotation] = {}

    def spans(self) -> list[dict[str, Any]]:
        self._annotations(_annotations(self.source.get("annotations")))
        self._binary_annotations(self.source.get("binaryAnnotations"))
        return [part.span(self.source) for part in (self.first, *self.others)]

    def _part(self, endpoint: dict[str, Any] | None) -> _Part:
        """The part of ``endpoint``'s service (the first part when there is no endpoint), made when new."""
        if endpoint is None:
            return self.first
        for part in (self.first, *self.others):
            if part.local is None:
                part.local = endpoint
                return part
            if _same_service(part.local, endpoint):
                return part
        return self._new_part(endpoint)

    def _new_part(self, endpoint: dict[str, Any]) -> _Part:
        part = _Part(endpoint)
        self.others.append(part)
        return part

    def _annotations(self, annotations: list[_Annotation]) -> None:
        core = self.core
        for annotation in annotations:
            part = self._part(annotation.endpoint)
            if annotation.value in _CORE and annotation.endpoint is not None:
                core[annotation.value] = annotation
                kind = _KIND_OF.get(annotation.value)
                if kind is not None:
                    part.kind = kind
            else:
                part.annotate(annotation)
        cs, sr, ss, cr = (core.get(name) for name in ("cs", "sr", "ss", "cr"))
        # Bridged from an event model, a span may miss its start annotation: its timestamp stands for it.
        if cs is None and cr is not None and self._ends_at(cr):
            cs = core["cs"] = _Annotation(self.timestamp, "cs", cr.endpoint)
        if sr is None and ss is not None and self._ends_at(ss):
            sr = core["sr"] = _Annotation(self.timestamp, "sr", ss.endpoint)
        if cs is not None and sr is not None:
            self._rpc_halves(cs, sr, ss, cr)
        elif cs is not None and cr is not None:
            self._timed(cs, cr)
        elif sr is not None and ss is not None:
            self._timed(sr, ss)
        else:
            self._incomplete_rpc()
        # v1 had no shared flag: a server half without the span's own timestamp (or duration) was one.
        if cs is None and sr is not None and (not self.timestamp or (ss is not None and not self.duration)):
            self._part(sr.endpoint).shared = True
        self._messaging()

    def _rpc_halves(
        self, cs: _Annotation, sr: _Annotation, ss: _Annotation | None, cr: _Annotation | None
    ) -> None:
        """Both halves of an RPC in one v1 span: the client's times are the span's, the server's its own."""
        assert cs.endpoint is not None and sr.endpoint is not None
        self._timed(cs, cr)
        client, server = self._halves(cs.endpoint, sr.endpoint, ("CLIENT", "SERVER"))
        server.timestamp = sr.timestamp
        if ss is not None:
            server.duration = ss.timestamp - sr.timestamp
        if cr is None and not self.duration:
            client.duration = None  # one-way: no duration

    def _halves(
        self, first: dict[str, Any], second: dict[str, Any], kinds: tuple[str, str]
    ) -> tuple[_Part, _Part]:
        """The parts of the two halves one v1 span holds (a client and a server, a producer and a consumer), the
        second marked shared: one per service, or two all the same when a call loops back to its own service."""
        sender = self._part(first)
        if _same_service(first, second):
            sender.kind = kinds[0]
            receiver = self._new_part(second)
            receiver.kind = kinds[1]
        else:
            receiver = self._part(second)
        receiver.shared = True
        return sender, receiver

    def _messaging(self) -> None:
        ms, mr, ws, wr = (self.core.get(name) for name in ("ms", "mr", "ws", "wr"))
        if ms is not None and mr is not None:  # not supposed to share a span, but when they do
            assert ms.endpoint is not None and mr.endpoint is not None
            producer, consumer = self._halves(ms.endpoint, mr.endpoint, ("PRODUCER", "CONSUMER"))
            if wr is not None:
                consumer.timestamp, consumer.duration = wr.timestamp, mr.timestamp - wr.timestamp
            else:
                consumer.timestamp = mr.timestamp
            producer.timestamp = ms.timestamp
            producer.duration = ws.timestamp - ms.timestamp if ws is not None else None
        elif ms is not None:
            self._timed(ms, ws)
        elif mr is not None and wr is not None:
            self._timed(wr, mr)
        elif mr is not None:
            self._timed(mr, None)
        else:
            for wire in (ws, wr):
                if wire is not None:
                    self._part(wire.endpoint).annotate(wire)

    def _ends_at(self, end: _Annotation) -> bool:
        return bool(self.timestamp and self.duration and self.timestamp + self.duration == end.timestamp)

    def _timed(self, begin: _Annotation, end: _Annotation | None) -> None:
        """The part of ``begin``'s endpoint timed by the span's own timestamp and duration, or else by the two."""
        part = self._part(begin.endpoint)
        if self.timestamp and self.duration:
            part.timestamp, part.duration = self.timestamp, self.duration
        else:
            part.timestamp = begin.timestamp
            if end is not None:
                part.duration = end.timestamp - begin.timestamp

    def _incomplete_rpc(self) -> None:
        """Half an RPC's core annotations: each part starts at its own start annotation, and keeps its end one
        as an event; the span's own timestamp, when set, times the first part."""
        core = self.core
        for part in (self.first, *self.others):
            begin, end = {"CLIENT": ("cs", "cr"), "SERVER": ("sr", "ss")}.get(part.kind or "", (None, None))
            if begin is None or end is None:
                continue
            if begin in core:
                part.timestamp = core[begin].timestamp
            if end in core:
                part.annotate(core[end])
        if self.timestamp:
            self.first.timestamp, self.first.duration = self.timestamp, self.duration or None

    def _binary_annotations(self, annotations: Any) -> None:
        if annotations is None:
            return
        if type(annotations) is not list:
            raise SpanRejected(f"expected an array, got {preview(annotations)}", "binaryAnnotations")
        addresses: dict[str, dict[str, Any]] = {}
        for i, annotation in enumerate(annotations):
            where = f"binaryAnnotations[{i}]"
            if type(annotation) is not dict or type(annotation.get("key")) is not str:
                raise SpanRejected("must be an object with a key", where)
            key, value = annotation["key"], annotation.get("value")
            endpoint = _endpoint(annotation.get("endpoint"), f"{where}.endpoint")
            if type(value) is str:
                part = self._part(endpoint)  # an empty "lc" tells the local span's endpoint, and no more
                if value or key != "lc":
                    part.tags[key] = value
            elif value is True and endpoint is not None and key in _ADDRESSES:
                addresses[key] = endpoint
        if addresses:
            self._addresses(addresses.get("ca"), addresses.get("sa"), addresses.get("ma"))

    def _addresses(
        self, ca: dict[str, Any] | None, sa: dict[str, Any] | None, ma: dict[str, Any] | None
    ) -> None:
        """Address annotations as remote endpoints: the server's address on the client half, the client's on the
        server half, the broker's on both messaging halves."""
        core = self.core
        if not any(name in core for name in ("cs", "cr", "ss", "sr")) and (ca is not None or sa is not None):
            if ca is not None and sa is not None:
                self._part(ca).remote = sa
            elif sa is not None:
                self.first.remote = sa  # "sa" alone is a remote address, not a sign of a client span
            elif ca is not None:
                self.first.kind, self.first.remote = "SERVER", ca
            return
        server = core.get("sr") or core.get("ss")
        if ca is not None and server is not None and server.endpoint is not None and ca != server.endpoint:
            if _same_service(ca, server.endpoint):
                # Finagle's "ca" on a server span is the client's socket under the server's own name: no loopback.
                ca = {name: value for name, value in ca.items() if name != "serviceName"}
            self._part(server.endpoint).remote = ca
        client = core.get("cs") or core.get("cr")
        if sa is not None and client is not None:
            self._part(client.endpoint).remote = sa
        if ma is not None:
            for name in ("ms", "mr"):
                if name in core:
                    self._part(core[name].endpoint).remote = ma


def _annotations(annotations: Any) -> list[_Annotation]:
    if annotations is None:
        return []
    if type(annotations) is not list:
        raise SpanRejected(f"expected an array, got {preview(annotations)}", "annotations")
    read = []
    for i, annotation in enumerate(annotations):
        where = f"annotations[{i}]"
        if type(annotation) is not dict:
            raise SpanRejected(f"expected an object, got {preview(annotation)}", where)
        timestamp, value = annotation.get("timestamp"), annotation.get("value")
        if type(timestamp) is not int or type(value) is not str:
            raise SpanRejected("must have an integer timestamp and a string value", where)
        read.append(_Annotation(timestamp, value, _endpoint(annotation.get("endpoint"), f"{where}.endpoint")))
    return read


def _endpoint(endpoint: Any, where: str) -> dict[str, Any] | None:
    if endpoint is None:
        return None
    if type(endpoint) is not dict:
        raise SpanRejected(f"expected an object, got {preview(endpoint)}", where)
    return endpoint


def _same_service(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Whether two endpoints name one service, as Zipkin compares them (its names are lower case; v1 writes an
    unknown one as "")."""
    return _service(left) == _service(right)


def _service(endpoint: dict[str, Any]) -> object:
    name = endpoint.get("serviceName")
    return (name.lower() or None) if type(name) is str else name


def _micros(value: Any, where: str) -> int:
    """A v1 span's time field, 0 when unset (as Zipkin reads it)."""
    if value is None:
        return 0
    if type(value) is not int:
        raise SpanRejected(f"expected an integer of microseconds, got {preview(value)}", where)
    return value
