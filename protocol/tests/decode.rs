//! The decoder faces the internet: arbitrary bytes must give a message, "need more", or an
//! error — never a panic, never an allocation beyond the announced (bounded) length.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sekisho_protocol::{
    ClientMessage, MAX_FRAME, NewRequest, ProtocolError, ServerMessage, Service, decode, encode,
    read, write,
};

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (any::<u16>(), ".{0,40}")
            .prop_map(|(version, client)| ClientMessage::Hello { version, client }),
        (".{0,40}", ".{0,400}", proptest::option::of(".{0,40}")).prop_map(
            |(code, csr_pem, password)| {
                ClientMessage::Enroll {
                    code,
                    csr_pem,
                    password: password.map(sekisho_protocol::Password),
                }
            }
        ),
        (
            ".{0,40}",
            proptest::option::of(any::<u16>()),
            proptest::option::of("[0-9A-Z-]{0,12}")
        )
            .prop_map(|(target, port, otp)| ClientMessage::Open {
                target,
                service: port.map_or(Service::Ssh, |port| Service::Tcp { port }),
                otp: otp.map(sekisho_protocol::Password),
            }),
        Just(ClientMessage::ListRequests),
        (".{0,400}").prop_map(|csr_pem| ClientMessage::Renew { csr_pem }),
        (
            ".{0,20}",
            "reference|change",
            ".{0,30}",
            ".{0,30}",
            ".{0,200}",
            proptest::option::of(".{0,200}")
        )
            .prop_map(|(target, level, window_start, window_end, reason, plan)| {
                ClientMessage::FileRequest {
                    request: NewRequest {
                        target,
                        level,
                        window_start,
                        window_end,
                        reason,
                        plan,
                    },
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<ClientMessage>(&bytes);
        let _ = decode::<ServerMessage>(&bytes);
    }

    #[test]
    fn a_valid_prefix_with_garbage_json_is_malformed(body in proptest::collection::vec(any::<u8>(), 1..256)) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        match decode::<ClientMessage>(&frame) {
            Ok(Some((m, n))) => {
                // Only possible if the bytes happen to be a valid message: then it round-trips.
                prop_assert_eq!(n, frame.len());
                prop_assert_eq!(encode(&m).unwrap().len() > 4, true);
            }
            Ok(None) => prop_assert!(false, "complete frame reported incomplete"),
            Err(ProtocolError::Malformed(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn messages_round_trip_and_truncations_ask_for_more(m in client_message()) {
        let frame = encode(&m).unwrap();
        let (back, used) = decode::<ClientMessage>(&frame).unwrap().unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(used, frame.len());
        for cut in 0..frame.len() {
            prop_assert!(decode::<ClientMessage>(&frame[..cut]).unwrap().is_none());
        }
    }
}

#[test]
fn oversized_frames_are_refused_before_reading_them() {
    let announced = (MAX_FRAME as u32 + 1).to_be_bytes();
    assert!(matches!(
        decode::<ClientMessage>(&announced),
        Err(ProtocolError::TooLarge(n)) if n == MAX_FRAME + 1
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut input: &[u8] = &u32::MAX.to_be_bytes();
        assert!(matches!(
            read::<ClientMessage, _>(&mut input).await,
            Err(ProtocolError::TooLarge(_))
        ));
    });
}

#[test]
fn unknown_types_and_fields_are_errors() {
    for json in [
        r#"{"type":"shell","target":"pacs"}"#,
        r#"{"type":"hello","version":1,"client":"x","extra":true}"#,
        r#"{"type":"open","target":"pacs","service":{"kind":"udp","port":53}}"#,
    ] {
        let mut frame = (json.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(json.as_bytes());
        assert!(
            matches!(
                decode::<ClientMessage>(&frame),
                Err(ProtocolError::Malformed(_))
            ),
            "{json} accepted"
        );
    }
}

#[test]
fn frames_over_a_stream() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut buf = vec![];
        let hello = ClientMessage::Hello {
            version: 1,
            client: "sekisho-client 0.1".into(),
        };
        write(&mut buf, &hello).await.unwrap();
        write(&mut buf, &ServerMessage::Accepted).await.unwrap();
        let mut r: &[u8] = &buf;
        assert_eq!(read::<ClientMessage, _>(&mut r).await.unwrap(), hello);
        assert_eq!(
            read::<ServerMessage, _>(&mut r).await.unwrap(),
            ServerMessage::Accepted
        );
        assert!(matches!(
            read::<ServerMessage, _>(&mut r).await,
            Err(ProtocolError::Closed)
        ));
    });
}

/// The fuzzer's seed corpus (`fuzz/seeds`) is made of valid frames, each a message of one
/// side or the other, so that fuzzing starts from inputs that reach deep into the decoder.
#[test]
fn the_fuzz_seeds_are_valid_frames() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let whole = |used: usize| used == bytes.len();
        let ok = matches!(decode::<ClientMessage>(&bytes), Ok(Some((_, n))) if whole(n))
            || matches!(decode::<ServerMessage>(&bytes), Ok(Some((_, n))) if whole(n));
        assert!(ok, "{} is not a valid frame", path.display());
        seen += 1;
    }
    assert!(seen >= 9, "only {seen} seeds");
}
