import purerpc
import evactors._generated.evactors.v1.system_service_pb2 as evactors_dot_v1_dot_system_service__pb2


class SystemServiceServicer(purerpc.Servicer):
    async def GetSystemInfo(self, input_message):
        raise NotImplementedError()

    async def GetSystemEvents(self, input_message):
        raise NotImplementedError()

    async def SystemPrune(self, input_message):
        raise NotImplementedError()

    @property
    def service(self) -> purerpc.Service:
        service_obj = purerpc.Service(
            "evactors.v1.SystemService"
        )
        service_obj.add_method(
            "GetSystemInfo",
            self.GetSystemInfo,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                evactors_dot_v1_dot_system_service__pb2.GetSystemInfoRequest,
                evactors_dot_v1_dot_system_service__pb2.GetSystemInfoResponse,
            )
        )
        service_obj.add_method(
            "GetSystemEvents",
            self.GetSystemEvents,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                evactors_dot_v1_dot_system_service__pb2.GetSystemEventsRequest,
                evactors_dot_v1_dot_system_service__pb2.SystemEvent,
            )
        )
        service_obj.add_method(
            "SystemPrune",
            self.SystemPrune,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                evactors_dot_v1_dot_system_service__pb2.SystemPruneRequest,
                evactors_dot_v1_dot_system_service__pb2.SystemPruneResponse,
            )
        )
        return service_obj


class SystemServiceStub:
    def __init__(self, channel):
        self._client = purerpc.Client(
            "evactors.v1.SystemService",
            channel
        )
        self.GetSystemInfo = self._client.get_method_stub(
            "GetSystemInfo",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                evactors_dot_v1_dot_system_service__pb2.GetSystemInfoRequest,
                evactors_dot_v1_dot_system_service__pb2.GetSystemInfoResponse,
            )
        )
        self.GetSystemEvents = self._client.get_method_stub(
            "GetSystemEvents",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                evactors_dot_v1_dot_system_service__pb2.GetSystemEventsRequest,
                evactors_dot_v1_dot_system_service__pb2.SystemEvent,
            )
        )
        self.SystemPrune = self._client.get_method_stub(
            "SystemPrune",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                evactors_dot_v1_dot_system_service__pb2.SystemPruneRequest,
                evactors_dot_v1_dot_system_service__pb2.SystemPruneResponse,
            )
        )