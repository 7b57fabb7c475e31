//! The X.224 negotiation, spoken separately with each side.
//!
//! Toward the vendor the gateway is the server and always selects TLS: the vendor's RDP
//! client proves nothing with a password (it has none), its identity is the designated
//! client's certificate. Toward the target the gateway is the client and asks for NLA
//! (CredSSP) or TLS; standard RDP security (RC4) is never accepted on either side.

use ironrdp_pdu::nego::{
    ConnectionConfirm, ConnectionRequest, FailureCode, NegoRequestData, RequestFlags,
    ResponseFlags, SecurityProtocol,
};
use ironrdp_pdu::x224::X224;

use crate::RdpError;

/// What the vendor's client asked for.
#[derive(Clone, Copy, Debug)]
pub struct VendorRequest {
    pub protocols: SecurityProtocol,
}

/// Reads the vendor's Connection Request.
pub fn read_request(bytes: &[u8]) -> Result<VendorRequest, RdpError> {
    let request = ironrdp_pdu::decode::<X224<ConnectionRequest>>(bytes)
        .map_err(|e| RdpError::protocol("X.224 Connection Request", e))?
        .0;
    Ok(VendorRequest {
        protocols: request.protocol,
    })
}

/// The answer to the vendor: TLS when its client offered it, else a failure saying TLS is
/// required (`Err` carries the encoded failure to send before closing).
pub fn answer_vendor(request: VendorRequest) -> Result<Vec<u8>, Vec<u8>> {
    let (confirm, ok) = if request.protocols.contains(SecurityProtocol::SSL) {
        (
            ConnectionConfirm::Response {
                flags: ResponseFlags::EXTENDED_CLIENT_DATA_SUPPORTED,
                protocol: SecurityProtocol::SSL,
            },
            true,
        )
    } else {
        (
            ConnectionConfirm::Failure {
                code: FailureCode::SSL_REQUIRED_BY_SERVER,
            },
            false,
        )
    };
    let bytes = ironrdp_pdu::encode_vec(&X224(confirm)).unwrap_or_default();
    if ok { Ok(bytes) } else { Err(bytes) }
}

/// The gateway's Connection Request to the target: NLA or TLS, with the account as cookie.
pub fn request_target(account: &str) -> Result<Vec<u8>, RdpError> {
    let request = ConnectionRequest {
        nego_data: Some(NegoRequestData::cookie(account.to_owned())),
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::HYBRID | SecurityProtocol::SSL,
        correlation_info: None,
    };
    ironrdp_pdu::encode_vec(&X224(request)).map_err(|e| RdpError::encode("Connection Request", e))
}

/// What the target chose: NLA (`HYBRID`/`HYBRID_EX`) or TLS (`SSL`); anything else is an
/// error naming what the target wanted.
pub fn read_target_confirm(bytes: &[u8]) -> Result<SecurityProtocol, RdpError> {
    let confirm = ironrdp_pdu::decode::<X224<ConnectionConfirm>>(bytes)
        .map_err(|e| RdpError::protocol("X.224 Connection Confirm", e))?
        .0;
    match confirm {
        ConnectionConfirm::Response { protocol, .. }
            if protocol.intersects(SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX)
                || protocol == SecurityProtocol::SSL =>
        {
            Ok(protocol)
        }
        ConnectionConfirm::Response { protocol, .. } => Err(RdpError::protocol(
            "security negotiation",
            format!("the target chose {protocol}, which the gateway does not speak"),
        )),
        ConnectionConfirm::Failure { code } => Err(RdpError::protocol(
            "security negotiation",
            format!("the target refused NLA and TLS: {code}"),
        )),
    }
}

/// Whether the target's choice is NLA.
pub fn is_nla(protocol: SecurityProtocol) -> bool {
    protocol.intersects(SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendor_gets_tls_or_a_failure_and_the_target_request_round_trips() {
        let req = request_target("maint").unwrap_or_default();
        let back = read_request(&req).map(|r| r.protocols).ok();
        assert_eq!(back, Some(SecurityProtocol::HYBRID | SecurityProtocol::SSL));
        let tls = VendorRequest {
            protocols: SecurityProtocol::SSL | SecurityProtocol::HYBRID,
        };
        assert!(answer_vendor(tls).is_ok());
        let rc4_only = VendorRequest {
            protocols: SecurityProtocol::empty(),
        };
        assert!(answer_vendor(rc4_only).is_err());
        let ok = answer_vendor(tls).unwrap_or_default();
        assert_eq!(read_target_confirm(&ok).ok(), Some(SecurityProtocol::SSL));
        let failed = answer_vendor(rc4_only).err().unwrap_or_default();
        assert!(read_target_confirm(&failed).is_err());
    }
}
