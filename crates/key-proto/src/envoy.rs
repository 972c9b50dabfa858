//! Envoy's external authorization API (`envoy.service.auth.v3.Authorization/Check`), as the
//! `envoy-types` crate generates it for this tonic and prost release: the messages, the server
//! that key-grpc serves beside KeyService, and the client that the tests and the load generator
//! call it with. Only what ext_authz uses is named here.

pub use envoy_types::pb::{
    envoy::{
        config::core::v3::{
            Address, HeaderValue, HeaderValueOption, SocketAddress, address,
            header_value_option::HeaderAppendAction, socket_address,
        },
        service::auth::v3::{
            AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
            attribute_context,
            authorization_client::AuthorizationClient,
            authorization_server::{Authorization, AuthorizationServer},
            check_response::HttpResponse,
        },
        r#type::v3::{HttpStatus, StatusCode as HttpStatusCode},
    },
    google::rpc::Status as RpcStatus,
};

/// The ext_authz service's full name, as in its gRPC path and health checks.
pub const AUTHORIZATION_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// A `FileDescriptorSet` naming only `Authorization/Check` (envoy-types ships none): enough for
/// the telemetry layer to name the method's calls, not for reflection.
pub fn check_method_descriptor() -> Vec<u8> {
    use prost::Message;
    use prost_types::{
        FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    };
    FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("envoy/service/auth/v3/external_auth.proto".to_owned()),
            package: Some("envoy.service.auth.v3".to_owned()),
            service: vec![ServiceDescriptorProto {
                name: Some("Authorization".to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Check".to_owned()),
                    input_type: Some(".envoy.service.auth.v3.CheckRequest".to_owned()),
                    output_type: Some(".envoy.service.auth.v3.CheckResponse".to_owned()),
                    ..MethodDescriptorProto::default()
                }],
                ..ServiceDescriptorProto::default()
            }],
            ..FileDescriptorProto::default()
        }],
    }
    .encode_to_vec()
}
