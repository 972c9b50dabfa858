//! Callers that give up: a gRPC client whose deadline passes while its calls still wait for
//! the server resets their streams, and under load many such resets arrive before the server
//! has taken the streams up. That is a client doing the right thing, not an attack, so the
//! connection and the calls it still waits for must survive it.
//!
//! Spoken in raw HTTP/2 (the h2 crate, already under tonic), because only there can a test put
//! many streams and their resets into one write, which the server reads before it accepts any
//! of them: what an overloaded server sees.

use bytes::{BufMut, Bytes, BytesMut};
use h2::{Reason, client::SendRequest};
use http::{Request, StatusCode};
use key_proto::v1;
use prost::Message;
use tokio::net::TcpStream;

use crate::helpers::{Backend, spawn_app};

/// A unary gRPC request: the five-byte frame header (uncompressed, big-endian length), then
/// the message.
fn grpc_frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(body.len()).unwrap());
    frame.put_slice(&body);
    frame.freeze()
}

fn send_verify(
    h2: &mut SendRequest<Bytes>,
    authority: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let request = Request::post(format!(
        "http://{authority}/keyrack.v1.KeyService/VerifyKey"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut stream) = h2.send_request(request, false).unwrap();
    let message = v1::VerifyKeyRequest {
        key: "sk_live_not_a_key".to_owned(),
        required_scopes: vec!["chat".to_owned()],
        ..Default::default()
    };
    stream.send_data(grpc_frame(&message), true).unwrap();
    (response, stream)
}

/// Sixty calls go out in one write, and forty of them are cancelled in the same write (their
/// callers' deadlines passed): the twenty left are answered on the same connection. h2's
/// default would tear the whole connection down after twenty such resets (its guard against
/// the "rapid reset" attack), failing every call on it, so an overloaded server would answer
/// its clients' deadlines by dropping their connections and the calls it had admitted.
#[tokio::test]
async fn calls_cancelled_before_the_server_takes_them_up_leave_the_connection_and_the_others() {
    let app = spawn_app(&Backend::Sqlite).await;
    let authority = app.addr.to_string();
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();

    // Nothing is written until this task yields: the connection is driven by its own task.
    let mut kept = Vec::new();
    for n in 0..60 {
        let (response, mut stream) = send_verify(&mut h2, &authority);
        if n % 3 == 0 {
            kept.push(response);
        } else {
            stream.send_reset(Reason::CANCEL);
        }
    }
    for response in kept {
        let response = response
            .await
            .expect("the connection survived the cancellations");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            message.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.unwrap().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{trailers:?}");
        let answer = v1::VerifyKeyResponse::decode(&message[5..]).unwrap();
        assert_eq!(answer.code(), v1::VerifyCode::InvalidApiKey);
    }
    // And the connection still takes new calls.
    let mut h2 = h2.ready().await.unwrap();
    let (response, _stream) = send_verify(&mut h2, &authority);
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    driver.abort();
}

/// The guard itself stays: a client that opens and resets streams faster than the server can
/// take them up, far beyond what one connection may have open (the "rapid reset" attack),
/// loses its connection.
#[tokio::test]
async fn a_flood_of_reset_streams_still_closes_the_connection() {
    let app = spawn_app(&Backend::Sqlite).await;
    let authority = app.addr.to_string();
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    for _ in 0..2_000 {
        let (_, mut stream) = send_verify(&mut h2, &authority);
        stream.send_reset(Reason::CANCEL);
    }
    let outcome = driver.await.unwrap();
    let error = outcome.expect_err("the server closed the connection");
    assert_eq!(error.reason(), Some(Reason::ENHANCE_YOUR_CALM), "{error:?}");
}
