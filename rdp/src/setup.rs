//! The messages of the connection sequence the relay reads or rewrites.
//!
//! Everything here takes the bytes of one whole PDU as it was on the wire (after TLS) and
//! returns the bytes to send on, so the relay never builds a message from scratch: what it
//! does not change passes as the peer encoded it.

use std::borrow::Cow;

use ironrdp_pdu::gcc::{ChannelName, ClientEarlyCapabilityFlags, ConferenceCreateRequest};
use ironrdp_pdu::mcs::{ConnectInitial, ConnectResponse, McsMessage, SendDataRequest};
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::ClientInfoPdu;
use ironrdp_pdu::rdp::capability_sets::{CapabilitySet, CodecProperty, OrderSupportIndex};
use ironrdp_pdu::rdp::client_info::{ClientInfoFlags, CompressionType};
use ironrdp_pdu::rdp::headers::{ShareControlHeader, ShareControlPdu};
use ironrdp_pdu::x224::{X224, X224Data};
use serde::{Deserialize, Serialize};

use crate::RdpError;

/// What the vendor's client announced in its MCS Connect Initial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSetup {
    /// Static virtual channels, in the order the server assigns their ids.
    pub channels: Vec<String>,
    pub width: u16,
    pub height: u16,
    /// The Windows keyboard layout id (e.g. 0x0409 US, 0x0411 Japanese).
    pub keyboard_layout: u32,
}

/// Decodes a Connect Initial, sets the security protocol the *target* chose (the vendor's
/// client filled in what the gateway chose toward it) and withdraws the graphics pipeline
/// (its H.264 frames are not something the replay can draw; the server falls back to bitmap
/// updates) and the UDP multitransport. Returns the bytes for the target and the setup.
pub fn rewrite_connect_initial(
    bytes: &[u8],
    target_protocol: SecurityProtocol,
) -> Result<(Vec<u8>, ClientSetup), RdpError> {
    let what = "MCS Connect Initial";
    let data = ironrdp_pdu::decode::<X224<X224Data<'_>>>(bytes)
        .map_err(|e| RdpError::protocol(what, e))?
        .0;
    let mut initial = ironrdp_pdu::decode::<ConnectInitial>(data.data.as_ref())
        .map_err(|e| RdpError::protocol(what, e))?;
    let mut blocks = initial.conference_create_request.gcc_blocks().clone();
    let core = &mut blocks.core;
    core.optional_data.server_selected_protocol = Some(target_protocol);
    if let Some(flags) = core.optional_data.early_capability_flags.as_mut() {
        flags.remove(ClientEarlyCapabilityFlags::SUPPORT_DYN_VC_GFX_PROTOCOL);
    }
    blocks.multi_transport_channel = None;
    let setup = client_setup(&blocks);
    initial.conference_create_request =
        ConferenceCreateRequest::new(blocks).map_err(|e| RdpError::encode(what, e))?;
    let inner = ironrdp_pdu::encode_vec(&initial).map_err(|e| RdpError::encode(what, e))?;
    let out = ironrdp_pdu::encode_vec(&X224(X224Data {
        data: Cow::Owned(inner),
    }))
    .map_err(|e| RdpError::encode(what, e))?;
    Ok((out, setup))
}

fn channel_name(name: &ChannelName) -> String {
    name.as_str().unwrap_or("?").to_ascii_lowercase()
}

/// What the target answered in its MCS Connect Response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSetup {
    pub io_channel: u16,
    /// The ids of [`ClientSetup::channels`], in the same order.
    pub channel_ids: Vec<u16>,
    pub message_channel: Option<u16>,
}

fn decode_connect_response(bytes: &[u8]) -> Result<ConnectResponse, RdpError> {
    let what = "MCS Connect Response";
    let data = ironrdp_pdu::decode::<X224<X224Data<'_>>>(bytes)
        .map_err(|e| RdpError::protocol(what, e))?
        .0;
    ironrdp_pdu::decode::<ConnectResponse>(data.data.as_ref())
        .map_err(|e| RdpError::protocol(what, e))
}

fn server_setup(response: &ConnectResponse) -> ServerSetup {
    let blocks = response.conference_create_response.gcc_blocks();
    ServerSetup {
        io_channel: blocks.network.io_channel,
        channel_ids: blocks.network.channel_ids.clone(),
        message_channel: blocks
            .message_channel
            .as_ref()
            .map(|m| m.mcs_message_channel_id),
    }
}

/// What a Connect Response says, without changing it.
pub fn connect_response(bytes: &[u8]) -> Result<ServerSetup, RdpError> {
    Ok(server_setup(&decode_connect_response(bytes)?))
}

/// Reads the Connect Response and sets in it the protocols the *vendor* asked for (its
/// client checks the server echoes its own request). The field is patched in place, every
/// other byte passes as the target sent it; the result is decoded again to prove it.
pub fn rewrite_connect_response(
    bytes: &[u8],
    vendor_requested: SecurityProtocol,
) -> Result<(Vec<u8>, ServerSetup), RdpError> {
    let response = decode_connect_response(bytes)?;
    let blocks = response.conference_create_response.gcc_blocks();
    let setup = server_setup(&response);
    let Some(current) = blocks.core.optional_data.client_requested_protocols else {
        return Ok((bytes.to_vec(), setup));
    };
    // The server core block: type 0x0C01, length, version, clientRequestedProtocols.
    let mut out = bytes.to_vec();
    let want = current.bits().to_le_bytes();
    let found = (0..out.len().saturating_sub(12))
        .find(|&i| out[i..i + 2] == [0x01, 0x0C] && out.get(i + 8..i + 12) == Some(&want[..]));
    let Some(at) = found else {
        return Err(RdpError::protocol(
            "MCS Connect Response",
            "server core data not found",
        ));
    };
    out[at + 8..at + 12].copy_from_slice(&vendor_requested.bits().to_le_bytes());
    let check = decode_connect_response(&out)?;
    if check
        .conference_create_response
        .gcc_blocks()
        .core
        .optional_data
        .client_requested_protocols
        != Some(vendor_requested)
    {
        return Err(RdpError::protocol(
            "MCS Connect Response",
            "the requested protocols could not be set",
        ));
    }
    Ok((out, setup))
}

/// The user channel the target assigned (Attach User Confirm), if `bytes` is one.
pub fn attach_user_confirm(bytes: &[u8]) -> Option<u16> {
    match ironrdp_pdu::decode::<X224<McsMessage<'_>>>(bytes).ok()?.0 {
        McsMessage::AttachUserConfirm(c) => Some(c.initiator_id),
        _ => None,
    }
}

/// The MCS channel and user data of a slow-path Send Data Request or Indication (the data
/// borrowed from `bytes`): decoded once, then asked what it is with the functions below.
pub fn send_data(bytes: &[u8]) -> Option<(u16, Cow<'_, [u8]>)> {
    match ironrdp_pdu::decode::<X224<McsMessage<'_>>>(bytes).ok()?.0 {
        McsMessage::SendDataRequest(r) => Some((r.channel_id, r.user_data)),
        McsMessage::SendDataIndication(i) => Some((i.channel_id, i.user_data)),
        _ => None,
    }
}

/// A Share Control PDU's type (`pduType` & 0xF) from the first bytes of its user data,
/// without decoding it; `None` for a flow PDU or too few bytes.
pub fn share_control_type(user_data: &[u8]) -> Option<u16> {
    let total = u16::from_le_bytes([*user_data.first()?, *user_data.get(1)?]);
    let kind = u16::from_le_bytes([*user_data.get(2)?, *user_data.get(3)?]);
    (total != 0x8000).then_some(kind & 0x000F)
}

/// `pduType` of a Server Demand Active.
pub const DEMAND_ACTIVE: u16 = 0x1;
/// `pduType` of a Client Confirm Active.
pub const CONFIRM_ACTIVE: u16 = 0x3;

/// What a recorded Connect Initial says (as the target received it).
pub fn read_connect_initial(bytes: &[u8]) -> Option<ClientSetup> {
    let data = ironrdp_pdu::decode::<X224<X224Data<'_>>>(bytes).ok()?.0;
    let initial = ironrdp_pdu::decode::<ConnectInitial>(data.data.as_ref()).ok()?;
    Some(client_setup(initial.conference_create_request.gcc_blocks()))
}

fn client_setup(blocks: &ironrdp_pdu::gcc::ClientGccBlocks) -> ClientSetup {
    ClientSetup {
        channels: blocks
            .network
            .as_ref()
            .map(|n| n.channels.iter().map(|c| channel_name(&c.name)).collect())
            .unwrap_or_default(),
        width: blocks.core.desktop_width,
        height: blocks.core.desktop_height,
        keyboard_layout: blocks.core.keyboard_layout,
    }
}

/// The account the gateway logs in with.
pub struct Account<'a> {
    pub username: &'a str,
    pub domain: Option<&'a str>,
    pub password: &'a str,
}

/// The Client Info PDU rewritten: what goes to the target and what is recorded.
pub struct ClientInfoRewrite {
    pub to_target: Vec<u8>,
    /// The same PDU with the password left out.
    pub recorded: Vec<u8>,
    /// The user name the vendor's client had put there (audited, never used).
    pub vendor_username: String,
}

/// Replaces the credentials of the vendor's Client Info with the target account's (auto
/// logon), and turns bulk compression off.
pub fn rewrite_client_info(
    bytes: &[u8],
    account: &Account<'_>,
) -> Result<ClientInfoRewrite, RdpError> {
    let what = "Client Info";
    let request = match ironrdp_pdu::decode::<X224<McsMessage<'_>>>(bytes)
        .map_err(|e| RdpError::protocol(what, e))?
        .0
    {
        McsMessage::SendDataRequest(r) => r,
        other => {
            return Err(RdpError::protocol(
                what,
                format!("expected a Send Data Request, got {}", mcs_name(&other)),
            ));
        }
    };
    let mut pdu = ironrdp_pdu::decode::<ClientInfoPdu>(request.user_data.as_ref())
        .map_err(|e| RdpError::protocol(what, e))?;
    let vendor_username = pdu.client_info.credentials.username.clone();
    let info = &mut pdu.client_info;
    info.credentials.username = account.username.to_owned();
    info.credentials.domain = account.domain.map(str::to_owned);
    info.password_cookie = None;
    info.flags.remove(ClientInfoFlags::COMPRESSION);
    info.flags.insert(ClientInfoFlags::AUTOLOGON);
    info.compression_type = CompressionType::K8;
    let encode = |pdu: &ClientInfoPdu| -> Result<Vec<u8>, RdpError> {
        let user_data = ironrdp_pdu::encode_vec(pdu).map_err(|e| RdpError::encode(what, e))?;
        ironrdp_pdu::encode_vec(&X224(SendDataRequest {
            initiator_id: request.initiator_id,
            channel_id: request.channel_id,
            user_data: Cow::Owned(user_data),
        }))
        .map_err(|e| RdpError::encode(what, e))
    };
    pdu.client_info.credentials.password = String::new();
    let recorded = encode(&pdu)?;
    pdu.client_info.credentials.password = account.password.to_owned();
    let to_target = encode(&pdu)?;
    Ok(ClientInfoRewrite {
        to_target,
        recorded,
        vendor_username,
    })
}

fn mcs_name(m: &McsMessage<'_>) -> &'static str {
    match m {
        McsMessage::ErectDomainRequest(_) => "Erect Domain Request",
        McsMessage::AttachUserRequest(_) => "Attach User Request",
        McsMessage::AttachUserConfirm(_) => "Attach User Confirm",
        McsMessage::ChannelJoinRequest(_) => "Channel Join Request",
        McsMessage::ChannelJoinConfirm(_) => "Channel Join Confirm",
        McsMessage::SendDataRequest(_) => "Send Data Request",
        McsMessage::SendDataIndication(_) => "Send Data Indication",
        McsMessage::DisconnectProviderUltimatum(_) => "Disconnect Provider Ultimatum",
    }
}

/// Drawing orders the replay cannot draw; none is left announced to the target.
const ORDERS: [OrderSupportIndex; 21] = [
    OrderSupportIndex::DstBlt,
    OrderSupportIndex::PatBlt,
    OrderSupportIndex::ScrBlt,
    OrderSupportIndex::MemBlt,
    OrderSupportIndex::Mem3Blt,
    OrderSupportIndex::DrawnInEGrid,
    OrderSupportIndex::LineTo,
    OrderSupportIndex::MultiDrawnInEGrid,
    OrderSupportIndex::SaveBitmap,
    OrderSupportIndex::MultiDstBlt,
    OrderSupportIndex::MultiPatBlt,
    OrderSupportIndex::MultiScrBlt,
    OrderSupportIndex::MultiOpaqueRect,
    OrderSupportIndex::Fast,
    OrderSupportIndex::PolygonSC,
    OrderSupportIndex::PolygonCB,
    OrderSupportIndex::Polyline,
    OrderSupportIndex::FastGlyph,
    OrderSupportIndex::EllipseSC,
    OrderSupportIndex::EllipseCB,
    OrderSupportIndex::Index,
];

/// If `bytes` is the Client Confirm Active: the same with only what the replay can draw
/// announced (no drawing orders; of the bitmap codecs only RemoteFX, not NSCodec), so that
/// the target sends bitmaps the recording can be drawn from. `None` for any other PDU.
pub fn rewrite_confirm_active(bytes: &[u8]) -> Option<Result<Vec<u8>, RdpError>> {
    let what = "Client Confirm Active";
    let X224(McsMessage::SendDataRequest(request)) =
        ironrdp_pdu::decode::<X224<McsMessage<'_>>>(bytes).ok()?
    else {
        return None;
    };
    let mut header = ironrdp_pdu::decode::<ShareControlHeader>(request.user_data.as_ref()).ok()?;
    let ShareControlPdu::ClientConfirmActive(confirm) = &mut header.share_control_pdu else {
        return None;
    };
    for set in &mut confirm.pdu.capability_sets {
        match set {
            CapabilitySet::BitmapCodecs(codecs) => codecs.0.retain(|c| {
                matches!(
                    c.property,
                    CodecProperty::RemoteFx(_) | CodecProperty::ImageRemoteFx(_)
                )
            }),
            CapabilitySet::Order(order) => {
                for index in ORDERS {
                    order.set_support_flag(index, false);
                }
            }
            _ => {}
        }
    }
    let encoded = ironrdp_pdu::encode_vec(&header)
        .and_then(|user_data| {
            ironrdp_pdu::encode_vec(&X224(SendDataRequest {
                initiator_id: request.initiator_id,
                channel_id: request.channel_id,
                user_data: Cow::Owned(user_data),
            }))
        })
        .map_err(|e| RdpError::encode(what, e));
    Some(encoded)
}

/// Whether the user data of a Send Data Request is a Client Info PDU (its security header
/// says `SEC_INFO_PKT`).
pub fn is_client_info(user_data: &[u8]) -> bool {
    user_data
        .get(..2)
        .is_some_and(|f| u16::from_le_bytes([f[0], f[1]]) & 0x0040 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::rdp::capability_sets::{
        ClientConfirmActive, Codec, DemandActive, NsCodec, Order, OrderFlags, OrderSupportExFlags,
        client_codecs_capabilities,
    };

    fn confirm_active(sets: Vec<CapabilitySet>) -> Vec<u8> {
        let header = ShareControlHeader {
            share_control_pdu: ShareControlPdu::ClientConfirmActive(ClientConfirmActive {
                originator_id: 0x03EA,
                pdu: DemandActive {
                    source_descriptor: "MSTSC".into(),
                    capability_sets: sets,
                },
            }),
            pdu_source: 1007,
            share_id: 0x0001_03EA,
        };
        let user_data = ironrdp_pdu::encode_vec(&header).unwrap();
        ironrdp_pdu::encode_vec(&X224(SendDataRequest {
            initiator_id: 1007,
            channel_id: 1003,
            user_data: Cow::Owned(user_data),
        }))
        .unwrap()
    }

    #[test]
    fn the_confirm_active_keeps_only_what_the_replay_draws() {
        let mut order = Order::new(
            OrderFlags::NEGOTIATE_ORDER_SUPPORT,
            OrderSupportExFlags::empty(),
            480 * 480,
            0,
        );
        for index in [
            OrderSupportIndex::MemBlt,
            OrderSupportIndex::PatBlt,
            OrderSupportIndex::FastGlyph,
        ] {
            order.set_support_flag(index, true);
        }
        let mut codecs = client_codecs_capabilities(&["remotefx"]).unwrap();
        codecs.0.push(Codec {
            id: 1,
            property: CodecProperty::NsCodec(NsCodec {
                is_dynamic_fidelity_allowed: true,
                is_subsampling_allowed: true,
                color_loss_level: 3,
            }),
        });
        let bytes = confirm_active(vec![
            CapabilitySet::Order(order),
            CapabilitySet::BitmapCodecs(codecs),
        ]);
        let out = rewrite_confirm_active(&bytes).unwrap().unwrap();
        let Some((channel, user_data)) = send_data(&out) else {
            panic!("not a Send Data Request");
        };
        assert_eq!(channel, 1003);
        let header = ironrdp_pdu::decode::<ShareControlHeader>(&user_data).unwrap();
        let ShareControlPdu::ClientConfirmActive(confirm) = header.share_control_pdu else {
            panic!("not a Confirm Active");
        };
        let mut seen = 0;
        for set in confirm.pdu.capability_sets {
            match set {
                CapabilitySet::Order(mut o) => {
                    seen += 1;
                    for (i, index) in ORDERS.into_iter().enumerate() {
                        assert!(!o.get_support_flag(index), "order {i} still announced");
                    }
                }
                CapabilitySet::BitmapCodecs(c) => {
                    seen += 1;
                    assert_eq!(c.0.len(), 1);
                    assert!(matches!(c.0[0].property, CodecProperty::RemoteFx(_)));
                }
                _ => {}
            }
        }
        assert_eq!(seen, 2);
        // Any other PDU is not touched.
        let other = ironrdp_pdu::encode_vec(&X224(SendDataRequest {
            initiator_id: 1007,
            channel_id: 1004,
            user_data: Cow::Owned(vec![0, 0, 0, 0, 3, 0, 0, 0, 1, 2]),
        }))
        .unwrap();
        assert!(rewrite_confirm_active(&other).is_none());
    }
}
