//! The gateway decodes what any internet host sends to its QUIC listener, and the client
//! decodes what the gateway answers: neither may panic, hang or over-allocate on any bytes.
//! A decoded message must survive a round trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sekisho_protocol::{CertRefusal, ClientMessage, ServerMessage, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode::<T>(data) {
        assert!(used <= data.len());
        let again = encode(&msg).expect("a decoded message encodes");
        let (back, _) = decode::<T>(&again)
            .expect("its encoding decodes")
            .expect("whole");
        assert_eq!(back, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ClientMessage>(data);
    round_trip::<ServerMessage>(data);
    // The client reads the refusal out of a TLS error's text.
    let _ = CertRefusal::find(&String::from_utf8_lossy(data));
});
