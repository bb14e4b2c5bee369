from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetTopologyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Switch(_message.Message):
    __slots__ = ("dpid", "role", "connected", "connected_since", "ports", "drained", "plane", "pod", "spine_plane")
    DPID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SINCE_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    SPINE_PLANE_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    role: str
    connected: bool
    connected_since: float
    ports: int
    drained: bool
    plane: int
    pod: int
    spine_plane: int
    def __init__(self, dpid: _Optional[int] = ..., role: _Optional[str] = ..., connected: _Optional[bool] = ..., connected_since: _Optional[float] = ..., ports: _Optional[int] = ..., drained: _Optional[bool] = ..., plane: _Optional[int] = ..., pod: _Optional[int] = ..., spine_plane: _Optional[int] = ...) -> None: ...

class Link(_message.Message):
    __slots__ = ("src_dpid", "src_port", "dst_dpid", "dst_port", "discovered_at", "drained")
    SRC_DPID_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    DST_DPID_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    DISCOVERED_AT_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    src_dpid: int
    src_port: int
    dst_dpid: int
    dst_port: int
    discovered_at: float
    drained: bool
    def __init__(self, src_dpid: _Optional[int] = ..., src_port: _Optional[int] = ..., dst_dpid: _Optional[int] = ..., dst_port: _Optional[int] = ..., discovered_at: _Optional[float] = ..., drained: _Optional[bool] = ...) -> None: ...

class Host(_message.Message):
    __slots__ = ("mac", "ip", "dpid", "port", "first_seen", "recovered", "state", "last_seen")
    MAC_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    DPID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    mac: str
    ip: str
    dpid: int
    port: int
    first_seen: float
    recovered: bool
    state: str
    last_seen: float
    def __init__(self, mac: _Optional[str] = ..., ip: _Optional[str] = ..., dpid: _Optional[int] = ..., port: _Optional[int] = ..., first_seen: _Optional[float] = ..., recovered: _Optional[bool] = ..., state: _Optional[str] = ..., last_seen: _Optional[float] = ...) -> None: ...

class ServerNic(_message.Message):
    __slots__ = ("server", "rail", "nic", "mac", "ip", "dpid", "port", "state")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    RAIL_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    DPID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    server: str
    rail: int
    nic: str
    mac: str
    ip: str
    dpid: int
    port: int
    state: str
    def __init__(self, server: _Optional[str] = ..., rail: _Optional[int] = ..., nic: _Optional[str] = ..., mac: _Optional[str] = ..., ip: _Optional[str] = ..., dpid: _Optional[int] = ..., port: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class ServerSpec(_message.Message):
    __slots__ = ("name", "nics")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    name: str
    nics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., nics: _Optional[_Iterable[str]] = ...) -> None: ...

class SetServersRequest(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[ServerSpec]
    def __init__(self, servers: _Optional[_Iterable[_Union[ServerSpec, _Mapping]]] = ...) -> None: ...

class SetServersReply(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class Topology(_message.Message):
    __slots__ = ("switches", "links", "hosts", "warnings", "generated_at", "server_nics")
    SWITCHES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    SERVER_NICS_FIELD_NUMBER: _ClassVar[int]
    switches: _containers.RepeatedCompositeFieldContainer[Switch]
    links: _containers.RepeatedCompositeFieldContainer[Link]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    generated_at: float
    server_nics: _containers.RepeatedCompositeFieldContainer[ServerNic]
    def __init__(self, switches: _Optional[_Iterable[_Union[Switch, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[Link, _Mapping]]] = ..., hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., generated_at: _Optional[float] = ..., server_nics: _Optional[_Iterable[_Union[ServerNic, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("version", "started_at", "openflow_port", "qos_enabled", "te_enabled", "link_speed_mbps", "counters", "cluster")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    OPENFLOW_PORT_FIELD_NUMBER: _ClassVar[int]
    QOS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    TE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    LINK_SPEED_MBPS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    version: str
    started_at: float
    openflow_port: int
    qos_enabled: bool
    te_enabled: bool
    link_speed_mbps: float
    counters: _containers.ScalarMap[str, int]
    cluster: ClusterStatus
    def __init__(self, version: _Optional[str] = ..., started_at: _Optional[float] = ..., openflow_port: _Optional[int] = ..., qos_enabled: _Optional[bool] = ..., te_enabled: _Optional[bool] = ..., link_speed_mbps: _Optional[float] = ..., counters: _Optional[_Mapping[str, int]] = ..., cluster: _Optional[_Union[ClusterStatus, _Mapping]] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("name", "node_id", "members", "masters", "mastered_here", "etcd_ok", "etcd_error", "checked_at", "te_leader")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MASTERS_FIELD_NUMBER: _ClassVar[int]
    MASTERED_HERE_FIELD_NUMBER: _ClassVar[int]
    ETCD_OK_FIELD_NUMBER: _ClassVar[int]
    ETCD_ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    TE_LEADER_FIELD_NUMBER: _ClassVar[int]
    name: str
    node_id: str
    members: _containers.RepeatedScalarFieldContainer[str]
    masters: _containers.RepeatedCompositeFieldContainer[SwitchMaster]
    mastered_here: _containers.RepeatedScalarFieldContainer[int]
    etcd_ok: bool
    etcd_error: str
    checked_at: float
    te_leader: str
    def __init__(self, name: _Optional[str] = ..., node_id: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., masters: _Optional[_Iterable[_Union[SwitchMaster, _Mapping]]] = ..., mastered_here: _Optional[_Iterable[int]] = ..., etcd_ok: _Optional[bool] = ..., etcd_error: _Optional[str] = ..., checked_at: _Optional[float] = ..., te_leader: _Optional[str] = ...) -> None: ...

class SwitchMaster(_message.Message):
    __slots__ = ("dpid", "node_id")
    DPID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    node_id: str
    def __init__(self, dpid: _Optional[int] = ..., node_id: _Optional[str] = ...) -> None: ...

class GetQosPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClassMatch(_message.Message):
    __slots__ = ("udp_dst", "tcp_dst", "tcp_src", "dscp", "with_dscp")
    UDP_DST_FIELD_NUMBER: _ClassVar[int]
    TCP_DST_FIELD_NUMBER: _ClassVar[int]
    TCP_SRC_FIELD_NUMBER: _ClassVar[int]
    DSCP_FIELD_NUMBER: _ClassVar[int]
    WITH_DSCP_FIELD_NUMBER: _ClassVar[int]
    udp_dst: _containers.RepeatedScalarFieldContainer[str]
    tcp_dst: _containers.RepeatedScalarFieldContainer[str]
    tcp_src: _containers.RepeatedScalarFieldContainer[str]
    dscp: _containers.RepeatedScalarFieldContainer[int]
    with_dscp: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, udp_dst: _Optional[_Iterable[str]] = ..., tcp_dst: _Optional[_Iterable[str]] = ..., tcp_src: _Optional[_Iterable[str]] = ..., dscp: _Optional[_Iterable[int]] = ..., with_dscp: _Optional[_Iterable[int]] = ...) -> None: ...

class TrafficClass(_message.Message):
    __slots__ = ("name", "dscp", "queue", "scheduling", "share", "match")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DSCP_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    dscp: int
    queue: int
    scheduling: str
    share: float
    match: ClassMatch
    def __init__(self, name: _Optional[str] = ..., dscp: _Optional[int] = ..., queue: _Optional[int] = ..., scheduling: _Optional[str] = ..., share: _Optional[float] = ..., match: _Optional[_Union[ClassMatch, _Mapping]] = ...) -> None: ...

class QosPolicy(_message.Message):
    __slots__ = ("classes", "trust_unclassified_dscp", "enabled", "best_effort_share")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    TRUST_UNCLASSIFIED_DSCP_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    BEST_EFFORT_SHARE_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[TrafficClass]
    trust_unclassified_dscp: bool
    enabled: bool
    best_effort_share: float
    def __init__(self, classes: _Optional[_Iterable[_Union[TrafficClass, _Mapping]]] = ..., trust_unclassified_dscp: _Optional[bool] = ..., enabled: _Optional[bool] = ..., best_effort_share: _Optional[float] = ...) -> None: ...

class SetQosPolicyRequest(_message.Message):
    __slots__ = ("policy", "document")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    policy: QosPolicy
    document: str
    def __init__(self, policy: _Optional[_Union[QosPolicy, _Mapping]] = ..., document: _Optional[str] = ...) -> None: ...

class GetQosStatsRequest(_message.Message):
    __slots__ = ("dpid",)
    DPID_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    def __init__(self, dpid: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("dpid", "port", "port_name", "queue", "tx_bytes", "tx_packets", "tx_errors")
    DPID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PORT_NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    TX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    TX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    port: int
    port_name: str
    queue: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    def __init__(self, dpid: _Optional[int] = ..., port: _Optional[int] = ..., port_name: _Optional[str] = ..., queue: _Optional[int] = ..., tx_bytes: _Optional[int] = ..., tx_packets: _Optional[int] = ..., tx_errors: _Optional[int] = ...) -> None: ...

class QosStats(_message.Message):
    __slots__ = ("queues", "collected_at")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    collected_at: float
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ..., collected_at: _Optional[float] = ...) -> None: ...

class ListLinksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LinkStatus(_message.Message):
    __slots__ = ("src_dpid", "src_port", "dst_dpid", "dst_port", "rate_bps", "utilization", "drops_per_second", "errors_per_second")
    SRC_DPID_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    DST_DPID_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    DROPS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    src_dpid: int
    src_port: int
    dst_dpid: int
    dst_port: int
    rate_bps: float
    utilization: float
    drops_per_second: float
    errors_per_second: float
    def __init__(self, src_dpid: _Optional[int] = ..., src_port: _Optional[int] = ..., dst_dpid: _Optional[int] = ..., dst_port: _Optional[int] = ..., rate_bps: _Optional[float] = ..., utilization: _Optional[float] = ..., drops_per_second: _Optional[float] = ..., errors_per_second: _Optional[float] = ...) -> None: ...

class LinkList(_message.Message):
    __slots__ = ("links", "collected_at")
    LINKS_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    links: _containers.RepeatedCompositeFieldContainer[LinkStatus]
    collected_at: float
    def __init__(self, links: _Optional[_Iterable[_Union[LinkStatus, _Mapping]]] = ..., collected_at: _Optional[float] = ...) -> None: ...

class DrainLinkRequest(_message.Message):
    __slots__ = ("dpid", "port")
    DPID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    port: int
    def __init__(self, dpid: _Optional[int] = ..., port: _Optional[int] = ...) -> None: ...

class DrainSwitchRequest(_message.Message):
    __slots__ = ("dpid",)
    DPID_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    def __init__(self, dpid: _Optional[int] = ...) -> None: ...

class UndrainRequest(_message.Message):
    __slots__ = ("dpid", "port")
    DPID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    port: int
    def __init__(self, dpid: _Optional[int] = ..., port: _Optional[int] = ...) -> None: ...

class DrainReply(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("large_only",)
    LARGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    large_only: bool
    def __init__(self, large_only: _Optional[bool] = ...) -> None: ...

class FlowMatch(_message.Message):
    __slots__ = ("src_ip", "dst_ip", "protocol", "src_port", "dst_port")
    SRC_IP_FIELD_NUMBER: _ClassVar[int]
    DST_IP_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    src_ip: str
    dst_ip: str
    protocol: str
    src_port: int
    dst_port: int
    def __init__(self, src_ip: _Optional[str] = ..., dst_ip: _Optional[str] = ..., protocol: _Optional[str] = ..., src_port: _Optional[int] = ..., dst_port: _Optional[int] = ...) -> None: ...

class FlowStatus(_message.Message):
    __slots__ = ("flow", "src_leaf", "dst_leaf", "spine", "uplink_port", "rate_bps", "demand_bps", "traffic_class", "priority", "large", "pinned_by", "age_seconds", "moves", "super_spine", "spine_uplink_port")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SRC_LEAF_FIELD_NUMBER: _ClassVar[int]
    DST_LEAF_FIELD_NUMBER: _ClassVar[int]
    SPINE_FIELD_NUMBER: _ClassVar[int]
    UPLINK_PORT_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    DEMAND_BPS_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LARGE_FIELD_NUMBER: _ClassVar[int]
    PINNED_BY_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    SUPER_SPINE_FIELD_NUMBER: _ClassVar[int]
    SPINE_UPLINK_PORT_FIELD_NUMBER: _ClassVar[int]
    flow: FlowMatch
    src_leaf: int
    dst_leaf: int
    spine: int
    uplink_port: int
    rate_bps: float
    demand_bps: float
    traffic_class: str
    priority: bool
    large: bool
    pinned_by: str
    age_seconds: float
    moves: int
    super_spine: int
    spine_uplink_port: int
    def __init__(self, flow: _Optional[_Union[FlowMatch, _Mapping]] = ..., src_leaf: _Optional[int] = ..., dst_leaf: _Optional[int] = ..., spine: _Optional[int] = ..., uplink_port: _Optional[int] = ..., rate_bps: _Optional[float] = ..., demand_bps: _Optional[float] = ..., traffic_class: _Optional[str] = ..., priority: _Optional[bool] = ..., large: _Optional[bool] = ..., pinned_by: _Optional[str] = ..., age_seconds: _Optional[float] = ..., moves: _Optional[int] = ..., super_spine: _Optional[int] = ..., spine_uplink_port: _Optional[int] = ...) -> None: ...

class FlowList(_message.Message):
    __slots__ = ("flows", "collected_at", "te_enabled")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    TE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[FlowStatus]
    collected_at: float
    te_enabled: bool
    def __init__(self, flows: _Optional[_Iterable[_Union[FlowStatus, _Mapping]]] = ..., collected_at: _Optional[float] = ..., te_enabled: _Optional[bool] = ...) -> None: ...

class PinFlowRequest(_message.Message):
    __slots__ = ("flow", "spine")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SPINE_FIELD_NUMBER: _ClassVar[int]
    flow: FlowMatch
    spine: int
    def __init__(self, flow: _Optional[_Union[FlowMatch, _Mapping]] = ..., spine: _Optional[int] = ...) -> None: ...

class UnpinFlowRequest(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: FlowMatch
    def __init__(self, flow: _Optional[_Union[FlowMatch, _Mapping]] = ...) -> None: ...

class UnpinFlowReply(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("kinds", "replay")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    replay: bool
    def __init__(self, kinds: _Optional[_Iterable[str]] = ..., replay: _Optional[bool] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time", "kind", "message", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: float
    kind: str
    message: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[float] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetSwitchEntriesRequest(_message.Message):
    __slots__ = ("dpid",)
    DPID_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    def __init__(self, dpid: _Optional[int] = ...) -> None: ...

class SwitchEntries(_message.Message):
    __slots__ = ("dpid", "complete", "flows", "groups", "meters", "kept_groups", "pending")
    DPID_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    METERS_FIELD_NUMBER: _ClassVar[int]
    KEPT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    dpid: int
    complete: bool
    flows: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    meters: _containers.RepeatedScalarFieldContainer[str]
    kept_groups: _containers.RepeatedScalarFieldContainer[int]
    pending: int
    def __init__(self, dpid: _Optional[int] = ..., complete: _Optional[bool] = ..., flows: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ..., meters: _Optional[_Iterable[str]] = ..., kept_groups: _Optional[_Iterable[int]] = ..., pending: _Optional[int] = ...) -> None: ...

class RankPair(_message.Message):
    __slots__ = ("src", "dst")
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    src: int
    dst: int
    def __init__(self, src: _Optional[int] = ..., dst: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("id", "members", "pattern", "pairs", "transport", "traffic_class", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    members: _containers.RepeatedScalarFieldContainer[str]
    pattern: str
    pairs: _containers.RepeatedCompositeFieldContainer[RankPair]
    transport: str
    traffic_class: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., pattern: _Optional[str] = ..., pairs: _Optional[_Iterable[_Union[RankPair, _Mapping]]] = ..., transport: _Optional[str] = ..., traffic_class: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class JobPairStatus(_message.Message):
    __slots__ = ("src_rank", "dst_rank", "src_ip", "dst_ip", "src_leaf", "dst_leaf", "spine", "uplink_port", "step", "state", "bytes", "rate_bps", "super_spine")
    SRC_RANK_FIELD_NUMBER: _ClassVar[int]
    DST_RANK_FIELD_NUMBER: _ClassVar[int]
    SRC_IP_FIELD_NUMBER: _ClassVar[int]
    DST_IP_FIELD_NUMBER: _ClassVar[int]
    SRC_LEAF_FIELD_NUMBER: _ClassVar[int]
    DST_LEAF_FIELD_NUMBER: _ClassVar[int]
    SPINE_FIELD_NUMBER: _ClassVar[int]
    UPLINK_PORT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    SUPER_SPINE_FIELD_NUMBER: _ClassVar[int]
    src_rank: int
    dst_rank: int
    src_ip: str
    dst_ip: str
    src_leaf: int
    dst_leaf: int
    spine: int
    uplink_port: int
    step: int
    state: str
    bytes: int
    rate_bps: float
    super_spine: int
    def __init__(self, src_rank: _Optional[int] = ..., dst_rank: _Optional[int] = ..., src_ip: _Optional[str] = ..., dst_ip: _Optional[str] = ..., src_leaf: _Optional[int] = ..., dst_leaf: _Optional[int] = ..., spine: _Optional[int] = ..., uplink_port: _Optional[int] = ..., step: _Optional[int] = ..., state: _Optional[str] = ..., bytes: _Optional[int] = ..., rate_bps: _Optional[float] = ..., super_spine: _Optional[int] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("spec", "registered_at", "state", "pairs", "worst_link", "worst_link_pairs", "worst_link_utilization")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    WORST_LINK_FIELD_NUMBER: _ClassVar[int]
    WORST_LINK_PAIRS_FIELD_NUMBER: _ClassVar[int]
    WORST_LINK_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    registered_at: float
    state: str
    pairs: _containers.RepeatedCompositeFieldContainer[JobPairStatus]
    worst_link: str
    worst_link_pairs: int
    worst_link_utilization: float
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., registered_at: _Optional[float] = ..., state: _Optional[str] = ..., pairs: _Optional[_Iterable[_Union[JobPairStatus, _Mapping]]] = ..., worst_link: _Optional[str] = ..., worst_link_pairs: _Optional[int] = ..., worst_link_utilization: _Optional[float] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteJobReply(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...
