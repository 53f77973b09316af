from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_EVENT: _ClassVar[EventType]
    CONTAINER_EVENT: _ClassVar[EventType]
    IMAGE_EVENT: _ClassVar[EventType]
    NETWORK_EVENT: _ClassVar[EventType]
    VOLUME_EVENT: _ClassVar[EventType]
    TASK_EVENT: _ClassVar[EventType]
    SNAPSHOT_EVENT: _ClassVar[EventType]
    NAMESPACE_EVENT: _ClassVar[EventType]
    CONTENT_EVENT: _ClassVar[EventType]
    SYSTEM_EVENT: _ClassVar[EventType]
UNKNOWN_EVENT: EventType
CONTAINER_EVENT: EventType
IMAGE_EVENT: EventType
NETWORK_EVENT: EventType
VOLUME_EVENT: EventType
TASK_EVENT: EventType
SNAPSHOT_EVENT: EventType
NAMESPACE_EVENT: EventType
CONTENT_EVENT: EventType
SYSTEM_EVENT: EventType

class GetSystemEventsRequest(_message.Message):
    __slots__ = ("filters", "format", "since", "until", "after_sequence")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedScalarFieldContainer[str]
    format: str
    since: int
    until: int
    after_sequence: int
    def __init__(self, filters: _Optional[_Iterable[str]] = ..., format: _Optional[str] = ..., since: _Optional[int] = ..., until: _Optional[int] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class SystemEvent(_message.Message):
    __slots__ = ("timestamp", "container_id", "namespace", "topic", "status", "event_data", "type", "metadata", "sequence", "formatted")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FORMATTED_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    container_id: str
    namespace: str
    topic: str
    status: str
    event_data: str
    type: EventType
    metadata: _containers.ScalarMap[str, str]
    sequence: int
    formatted: str
    def __init__(self, timestamp: _Optional[int] = ..., container_id: _Optional[str] = ..., namespace: _Optional[str] = ..., topic: _Optional[str] = ..., status: _Optional[str] = ..., event_data: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., sequence: _Optional[int] = ..., formatted: _Optional[str] = ...) -> None: ...

class GetSystemInfoRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class Plugin(_message.Message):
    __slots__ = ("type", "id", "status")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    status: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ServiceStats(_message.Message):
    __slots__ = ("started_at", "events_received", "events_delivered", "events_dropped", "subscribers", "last_sequence", "containerd_connected")
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERD_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    started_at: int
    events_received: int
    events_delivered: int
    events_dropped: int
    subscribers: int
    last_sequence: int
    containerd_connected: bool
    def __init__(self, started_at: _Optional[int] = ..., events_received: _Optional[int] = ..., events_delivered: _Optional[int] = ..., events_dropped: _Optional[int] = ..., subscribers: _Optional[int] = ..., last_sequence: _Optional[int] = ..., containerd_connected: _Optional[bool] = ...) -> None: ...

class GetSystemInfoResponse(_message.Message):
    __slots__ = ("server_version", "server_revision", "server_uuid", "namespace", "containers", "containers_running", "containers_paused", "containers_stopped", "images", "namespaces", "plugins", "kernel_version", "operating_system", "os_type", "architecture", "ncpu", "mem_total", "name", "service_version", "stats")
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_REVISION_FIELD_NUMBER: _ClassVar[int]
    SERVER_UUID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_STOPPED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    OS_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    NCPU_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    server_revision: str
    server_uuid: str
    namespace: str
    containers: int
    containers_running: int
    containers_paused: int
    containers_stopped: int
    images: int
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    plugins: _containers.RepeatedCompositeFieldContainer[Plugin]
    kernel_version: str
    operating_system: str
    os_type: str
    architecture: str
    ncpu: int
    mem_total: int
    name: str
    service_version: str
    stats: ServiceStats
    def __init__(self, server_version: _Optional[str] = ..., server_revision: _Optional[str] = ..., server_uuid: _Optional[str] = ..., namespace: _Optional[str] = ..., containers: _Optional[int] = ..., containers_running: _Optional[int] = ..., containers_paused: _Optional[int] = ..., containers_stopped: _Optional[int] = ..., images: _Optional[int] = ..., namespaces: _Optional[_Iterable[str]] = ..., plugins: _Optional[_Iterable[_Union[Plugin, _Mapping]]] = ..., kernel_version: _Optional[str] = ..., operating_system: _Optional[str] = ..., os_type: _Optional[str] = ..., architecture: _Optional[str] = ..., ncpu: _Optional[int] = ..., mem_total: _Optional[int] = ..., name: _Optional[str] = ..., service_version: _Optional[str] = ..., stats: _Optional[_Union[ServiceStats, _Mapping]] = ...) -> None: ...

class SystemPruneRequest(_message.Message):
    __slots__ = ("all", "volumes", "filters", "dry_run", "namespace")
    ALL_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    all: bool
    volumes: bool
    filters: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    namespace: str
    def __init__(self, all: _Optional[bool] = ..., volumes: _Optional[bool] = ..., filters: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ..., namespace: _Optional[str] = ...) -> None: ...

class SystemPruneResponse(_message.Message):
    __slots__ = ("containers_deleted", "images_deleted", "networks_deleted", "volumes_deleted", "space_reclaimed", "errors")
    CONTAINERS_DELETED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_DELETED_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_DELETED_FIELD_NUMBER: _ClassVar[int]
    SPACE_RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    containers_deleted: _containers.RepeatedScalarFieldContainer[str]
    images_deleted: _containers.RepeatedScalarFieldContainer[str]
    networks_deleted: _containers.RepeatedScalarFieldContainer[str]
    volumes_deleted: _containers.RepeatedScalarFieldContainer[str]
    space_reclaimed: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, containers_deleted: _Optional[_Iterable[str]] = ..., images_deleted: _Optional[_Iterable[str]] = ..., networks_deleted: _Optional[_Iterable[str]] = ..., volumes_deleted: _Optional[_Iterable[str]] = ..., space_reclaimed: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...
