"""Zipkin v2 spans in their protobuf encoding (``application/x-protobuf``, ``zipkin.proto3.ListOfSpans``): what
Brave sends with ``Encoding.PROTO3``, zipkin-go's protobuf serializer, and the Collector's Zipkin exporter set to
``format: proto``. Each span is read into the shape of a Zipkin JSON span and decoded as one
(``decode_zipkin_spans``), so both encodings map, validate and reject alike.

The messages are described here rather than generated (``protoc``'s output is tied to a protobuf runtime
version): the fields of ``zipkin.proto`` in openzipkin/zipkin-api, in protobuf's own text format.
"""

from __future__ import annotations

import ipaddress
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from spyglass.receivers.decoders.result import DecodeResult, RequestMalformed, only_decode_errors
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_spans

__all__ = ["decode_zipkin_proto"]

_ZIPKIN_PROTO = """
name: "spyglass/zipkin_proto3.proto"
package: "zipkin.proto3"
syntax: "proto3"
message_type {
  name: "Endpoint"
  field { name: "service_name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "ipv4" number: 2 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "ipv6" number: 3 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "port" number: 4 type: TYPE_INT32 label: LABEL_OPTIONAL }
}
message_type {
  name: "Annotation"
  field { name: "timestamp" number: 1 type: TYPE_FIXED64 label: LABEL_OPTIONAL }
  field { name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL }
}
message_type {
  name: "Span"
  field { name: "trace_id" number: 1 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "parent_id" number: 2 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "id" number: 3 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "kind" number: 4 type: TYPE_ENUM type_name: ".zipkin.proto3.Span.Kind" label: LABEL_OPTIONAL }
  field { name: "name" number: 5 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "timestamp" number: 6 type: TYPE_FIXED64 label: LABEL_OPTIONAL }
  field { name: "duration" number: 7 type: TYPE_UINT64 label: LABEL_OPTIONAL }
  field {
    name: "local_endpoint" number: 8 type: TYPE_MESSAGE type_name: ".zipkin.proto3.Endpoint" label: LABEL_OPTIONAL
  }
  field {
    name: "remote_endpoint" number: 9 type: TYPE_MESSAGE type_name: ".zipkin.proto3.Endpoint" label: LABEL_OPTIONAL
  }
  field {
    name: "annotations" number: 10 type: TYPE_MESSAGE type_name: ".zipkin.proto3.Annotation" label: LABEL_REPEATED
  }
  field {
    name: "tags" number: 11 type: TYPE_MESSAGE type_name: ".zipkin.proto3.Span.TagsEntry" label: LABEL_REPEATED
  }
  field { name: "debug" number: 12 type: TYPE_BOOL label: LABEL_OPTIONAL }
  field { name: "shared" number: 13 type: TYPE_BOOL label: LABEL_OPTIONAL }
  nested_type {
    name: "TagsEntry"
    field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
    field { name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL }
    options { map_entry: true }
  }
  enum_type {
    name: "Kind"
    value { name: "SPAN_KIND_UNSPECIFIED" number: 0 }
    value { name: "CLIENT" number: 1 }
    value { name: "SERVER" number: 2 }
    value { name: "PRODUCER" number: 3 }
    value { name: "CONSUMER" number: 4 }
  }
}
message_type {
  name: "ListOfSpans"
  field { name: "spans" number: 1 type: TYPE_MESSAGE type_name: ".zipkin.proto3.Span" label: LABEL_REPEATED }
}
"""


def _list_of_spans() -> type[Message]:
    pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with a generated zipkin module
    pool.Add(text_format.Parse(_ZIPKIN_PROTO, descriptor_pb2.FileDescriptorProto()))
    return cast(
        "type[Message]",
        message_factory.GetMessageClass(pool.FindMessageTypeByName("zipkin.proto3.ListOfSpans")),
    )


ListOfSpans = _list_of_spans()
#: Zipkin JSON's kind names by the protobuf enum's numbers; 0 is "absent". Other numbers pass as text, and the
#: JSON decoder keeps the span as it keeps an unknown kind name: internal, with the text in ``zipkin.kind``.
_KINDS = {1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}


@only_decode_errors("Zipkin protobuf")
def decode_zipkin_proto(body: bytes) -> DecodeResult:
    """Decode a ``zipkin.proto3.ListOfSpans``; raises ``DecodeError`` if nothing in it can be accepted."""
    try:
        spans = ListOfSpans.FromString(body).spans  # type: ignore[attr-defined]
    except ProtobufDecodeError as error:
        raise RequestMalformed(f"not a Zipkin ListOfSpans in protobuf: {error}") from None
    return decode_zipkin_spans([_as_json(span) for span in spans])


def _as_json(span: Any) -> dict[str, Any]:
    """A protobuf span as Zipkin's JSON writes it; a field at its default value is absent, as ``zipkin.proto``
    says (zero times, empty strings and ids, false flags)."""
    json: dict[str, Any] = {"traceId": span.trace_id.hex() or None, "id": span.id.hex() or None}
    if span.parent_id:
        json["parentId"] = span.parent_id.hex()
    if span.kind:
        json["kind"] = _KINDS.get(span.kind, str(span.kind))
    if span.name:
        json["name"] = span.name
    if span.timestamp:
        json["timestamp"] = span.timestamp
    if span.duration:
        json["duration"] = span.duration
    for field, key in (("local_endpoint", "localEndpoint"), ("remote_endpoint", "remoteEndpoint")):
        if span.HasField(field):
            json[key] = _endpoint(getattr(span, field))
    if span.annotations:
        json["annotations"] = [{"timestamp": a.timestamp or None, "value": a.value} for a in span.annotations]
    if span.tags:
        json["tags"] = dict(span.tags)
    if span.debug:
        json["debug"] = True
    if span.shared:
        json["shared"] = True
    return json


def _endpoint(endpoint: Any) -> dict[str, Any]:
    """An endpoint with its addresses as text; an address of the wrong length is left out, as unknown."""
    json: dict[str, Any] = {}
    if endpoint.service_name:
        json["serviceName"] = endpoint.service_name
    if len(endpoint.ipv4) == 4:
        json["ipv4"] = str(ipaddress.IPv4Address(endpoint.ipv4))
    if len(endpoint.ipv6) == 16:
        json["ipv6"] = str(ipaddress.IPv6Address(endpoint.ipv6))
    if endpoint.port:
        json["port"] = endpoint.port
    return json
