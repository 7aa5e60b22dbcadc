//! The binary event-stream framing InvokeEndpointWithResponseStream answers
//! in (`application/vnd.amazon.eventstream`): each message is a prelude
//! (total length, headers length, prelude CRC32), string headers, a payload
//! and a CRC32 of everything before it. The bytes are written by
//! aws-smithy-eventstream, whose reader the Rust SDK decodes them with;
//! botocore decodes the same format.
//!
//! A PayloadPart is an `event` message with the part's bytes as payload; a
//! failure mid-stream is an `exception` message named by `:exception-type`
//! with a JSON payload, as the SageMaker runtime model describes them.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

/// How a stream can fail after it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// ModelStreamError ModelInvocationTimeExceeded: the model did not finish
    /// within the time SageMaker allows a stream.
    TimeExceeded,
    /// ModelStreamError StreamBroken: the connection to the model broke.
    Broken,
    /// InternalStreamFailure: SageMaker itself failed.
    Internal,
}

impl StreamFailure {
    /// The `:exception-type` the SDKs map to an error type.
    pub fn exception_type(self) -> &'static str {
        match self {
            StreamFailure::TimeExceeded | StreamFailure::Broken => "ModelStreamError",
            StreamFailure::Internal => "InternalStreamFailure",
        }
    }

    /// ModelStreamError's ErrorCode; InternalStreamFailure has none.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            StreamFailure::TimeExceeded => Some("ModelInvocationTimeExceeded"),
            StreamFailure::Broken => Some("StreamBroken"),
            StreamFailure::Internal => None,
        }
    }

    fn message(self) -> &'static str {
        match self {
            StreamFailure::TimeExceeded => {
                "Your model primary did not complete sending the inference response in the allotted time."
            }
            StreamFailure::Broken => "The connection to model primary was closed before the response stream completed.",
            StreamFailure::Internal => {
                "The stream processing failed because of an unknown error, exception or failure. Try your request again."
            }
        }
    }
}

/// One PayloadPart event carrying `bytes`.
pub fn payload_part(bytes: impl Into<Bytes>) -> Bytes {
    encode(
        &[(":message-type", "event"), (":event-type", "PayloadPart"), (":content-type", "application/octet-stream")],
        bytes.into(),
    )
}

/// The exception message that ends a stream with `failure`.
pub fn failure(failure: StreamFailure) -> Bytes {
    let mut body = serde_json::Map::new();
    body.insert("Message".into(), failure.message().into());
    if let Some(code) = failure.error_code() {
        body.insert("ErrorCode".into(), code.into());
    }
    let payload = serde_json::to_vec(&body).expect("a JSON map serializes");
    encode(
        &[(":message-type", "exception"), (":exception-type", failure.exception_type()), (":content-type", "application/json")],
        payload.into(),
    )
}

/// One message with string headers.
fn encode(headers: &[(&'static str, &'static str)], payload: Bytes) -> Bytes {
    let headers = headers.iter().map(|&(name, value)| Header::new(name, HeaderValue::String(value.into()))).collect();
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::new();
    write_message_to(&message, &mut out).expect("short string headers and a payload under 4 GiB always encode");
    out.into()
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, read_message_from};
    use aws_smithy_eventstream::smithy::parse_response_headers;

    use super::*;

    /// CRC-32 (IEEE), bit by bit: an implementation of its own, to check
    /// the library's checksums against.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    fn be_u32(bytes: &[u8]) -> u32 {
        u32::from_be_bytes(bytes.try_into().unwrap())
    }

    #[test]
    fn an_empty_message_is_the_reference_encoding() {
        // The event-stream test suite's "empty_message": AAAAEAAAAAAFwkjrfZjI/w==.
        let expected = [0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff];
        assert_eq!(&encode(&[], Bytes::new())[..], &expected);
        assert_eq!(crc32(&expected[..8]), 0x05c2_48eb);
    }

    #[test]
    fn a_payload_part_has_its_lengths_and_checksums_where_the_prelude_says() {
        let frame = payload_part(&b"data:{\"token\":{\"text\":\" the\"}}\n\n"[..]);
        let total = be_u32(&frame[0..4]) as usize;
        let headers = be_u32(&frame[4..8]) as usize;
        assert_eq!(total, frame.len());
        assert_eq!(be_u32(&frame[8..12]), crc32(&frame[..8]), "prelude CRC");
        assert_eq!(be_u32(&frame[total - 4..]), crc32(&frame[..total - 4]), "message CRC");
        let payload = &frame[12 + headers..total - 4];
        assert_eq!(payload, b"data:{\"token\":{\"text\":\" the\"}}\n\n");
    }

    #[test]
    fn a_payload_part_decodes_as_the_sdk_reads_it() {
        let frame = payload_part(&b"data: [DONE]\n\n"[..]);
        let message = read_message_from(&frame[..]).unwrap();
        let headers = parse_response_headers(&message).unwrap();
        assert_eq!(headers.message_type.as_str(), "event");
        assert_eq!(headers.smithy_type.as_str(), "PayloadPart");
        assert_eq!(headers.content_type(), Some("application/octet-stream"), "the SDK refuses any other");
        assert_eq!(&message.payload()[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn failures_are_exceptions_named_as_the_runtime_model_names_them() {
        for (kind, exception, code) in [
            (StreamFailure::TimeExceeded, "ModelStreamError", Some("ModelInvocationTimeExceeded")),
            (StreamFailure::Broken, "ModelStreamError", Some("StreamBroken")),
            (StreamFailure::Internal, "InternalStreamFailure", None),
        ] {
            let message = read_message_from(&failure(kind)[..]).unwrap();
            let headers = parse_response_headers(&message).unwrap();
            assert_eq!((headers.message_type.as_str(), headers.smithy_type.as_str()), ("exception", exception));
            let body: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
            assert_eq!(body["ErrorCode"].as_str(), code, "{body}");
            assert!(body["Message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }

    #[test]
    fn frames_split_anywhere_decode_as_a_connection_delivers_them() {
        let stream: Vec<u8> = [payload_part(&b"one"[..]), payload_part(&b"two"[..]), failure(StreamFailure::Broken)].concat();
        for split in [1, 11, 12, 30, stream.len() - 1] {
            let mut decoder = MessageFrameDecoder::new();
            let mut buffer = bytes::BytesMut::new();
            let mut decoded = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                buffer.extend_from_slice(piece);
                while let DecodedFrame::Complete(message) = decoder.decode_frame(&mut buffer).unwrap() {
                    decoded.push(message);
                }
            }
            let payloads: Vec<&[u8]> = decoded.iter().map(|m| &m.payload()[..]).collect();
            assert_eq!(payloads.len(), 3, "split at {split}");
            assert_eq!((payloads[0], payloads[1]), (&b"one"[..], &b"two"[..]));
        }
    }
}
