//! Server reflection (`grpc.reflection.v1` and `v1alpha`, which older `grpcurl` versions speak)
//! for a server of Midge services, health and reflection itself: one builder, so the broker's
//! admin API and the SDK's plugin servers describe themselves the same way.

use tonic_reflection::pb::{v1, v1alpha};
use tonic_reflection::server::Builder;

/// A reflection builder knowing every descriptor a Midge server needs (the Midge packages,
/// health, reflection) and listing exactly `services` plus health and both reflection
/// versions. Call `build_v1()` and `build_v1alpha()` on it (it is cheap to make twice).
pub fn builder<'a>(services: impl IntoIterator<Item = &'a str>) -> Builder<'static> {
    let listed = services.into_iter().chain([
        tonic_health::pb::health_server::SERVICE_NAME,
        v1::server_reflection_server::SERVICE_NAME,
        v1alpha::server_reflection_server::SERVICE_NAME,
    ]);
    let builder = Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(v1alpha::FILE_DESCRIPTOR_SET);
    listed.fold(builder, |b, name| b.with_service_name(name))
}
