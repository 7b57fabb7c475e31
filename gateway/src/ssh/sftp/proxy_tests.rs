use super::*;

fn packet(kind: u8, id: u32, fields: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(&id.to_be_bytes());
    for f in fields {
        body.extend_from_slice(&(f.len() as u32).to_be_bytes());
        body.extend_from_slice(f);
    }
    body.extend_from_slice(tail);
    let mut p = (body.len() as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

fn open(id: u32, path: &str, flags: u32) -> Vec<u8> {
    wire::open(id, path.as_bytes(), flags, &0u32.to_be_bytes())
}

fn read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
    let mut tail = offset.to_be_bytes().to_vec();
    tail.extend_from_slice(&len.to_be_bytes());
    packet(FXP_READ, id, &[handle], &tail)
}

fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
    packet(FXP_DATA, id, &[bytes], &[])
}

fn targets(out: &[Out]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Out::Target(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn vendor(out: &[Out]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Out::Vendor(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn done(out: &[Out]) -> Vec<FileRecord> {
    out.iter()
        .filter_map(|o| match o {
            Out::Done(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

#[test]
fn without_upload_reads_pass_and_writes_are_answered_with_permission_denied() {
    let mut p = Proxy::new(UploadMode::Deny, DownloadMode::Allow(None));
    let read = open(1, "/etc/hosts", FXF_READ);
    let write = open(2, "/tmp/x", FXF_READ | FXF_WRITE | FXF_CREAT);
    let mkdir = packet(FXP_MKDIR, 3, &[b"/tmp/d"], &0u32.to_be_bytes());
    let rename = packet(
        FXP_EXTENDED,
        4,
        &[b"posix-rename@openssh.com", b"a", b"b"],
        &[],
    );
    let statvfs = packet(FXP_EXTENDED, 5, &[b"statvfs@openssh.com", b"/"], &[]);
    let unknown = packet(99, 6, &[], &[]);
    let all = [&read[..], &write, &mkdir, &rename, &statvfs, &unknown].concat();
    let out = p.from_vendor(&all).unwrap();
    assert_eq!(targets(&out), [read, statvfs]);
    let ids: Vec<u32> = vendor(&out).iter().map(|p| be32(&p[5..9])).collect();
    assert_eq!(ids, [2, 3, 4, 6]);
    let refused = vendor(&out);
    assert_eq!(refused[0][4], FXP_STATUS);
    assert_eq!(be32(&refused[0][9..13]), FX_PERMISSION_DENIED);
    assert!(
        out.iter()
            .any(|o| matches!(o, Out::Refused(Direction::Upload, w) if w.contains("/tmp/x")))
    );
}

#[test]
fn a_download_is_logged_with_the_hash_of_what_crossed() {
    let mut p = Proxy::new(UploadMode::Deny, DownloadMode::Allow(None));
    let file = b"hello, hospital".repeat(1000);
    p.from_vendor(&open(1, "/srv/report.csv", FXF_READ))
        .unwrap();
    let out = p.from_target(&wire::handle(1, b"h1")).unwrap();
    assert_eq!(vendor(&out), [wire::handle(1, b"h1")]);
    // Two reads in flight, answered in order, then EOF and close.
    p.from_vendor(&[read(2, b"h1", 0, 8000), read(3, b"h1", 8000, 8000)].concat())
        .unwrap();
    let replies = [data(2, &file[..8000]), data(3, &file[8000..])].concat();
    // Split inside a packet: replies are reassembled.
    let mut out = p.from_target(&replies[..100]).unwrap();
    out.extend(p.from_target(&replies[100..]).unwrap());
    assert_eq!(vendor(&out).concat(), replies);
    p.from_vendor(&read(4, b"h1", 15000, 8000)).unwrap();
    p.from_target(&wire::status(4, FX_EOF, "")).unwrap();
    p.from_vendor(&wire::close(5, b"h1")).unwrap();
    let out = p.from_target(&wire::status(5, FX_OK, "")).unwrap();
    let records = done(&out);
    assert_eq!(records.len(), 1, "{out:?}");
    let r = &records[0];
    assert_eq!(r.direction, Direction::Download);
    assert_eq!(r.path, "/srv/report.csv");
    assert_eq!(r.bytes, file.len() as u64);
    assert_eq!(r.sha256, Some(sha(&file)));
    assert_eq!(r.outcome, Outcome::Completed);
}

#[test]
fn downloads_are_refused_where_denied_and_past_the_limit() {
    let mut p = Proxy::new(UploadMode::Deny, DownloadMode::Deny);
    let out = p.from_vendor(&open(1, "/srv/db.dump", FXF_READ)).unwrap();
    assert!(targets(&out).is_empty());
    assert_eq!(be32(&vendor(&out)[0][9..13]), FX_PERMISSION_DENIED);

    let mut p = Proxy::new(UploadMode::Deny, DownloadMode::Allow(Some(100)));
    p.from_vendor(&open(1, "/srv/big", FXF_READ)).unwrap();
    p.from_target(&wire::handle(1, b"h")).unwrap();
    let out = p.from_vendor(&read(2, b"h", 0, 100)).unwrap();
    assert_eq!(targets(&out).len(), 1);
    p.from_target(&data(2, &[1u8; 100])).unwrap();
    let out = p.from_vendor(&read(3, b"h", 100, 100)).unwrap();
    assert!(targets(&out).is_empty());
    assert!(out.iter().any(
        |o| matches!(o, Out::Refused(Direction::Download, w) if w.contains("download limit of 100"))
    ));
    p.from_vendor(&wire::close(4, b"h")).unwrap();
    let out = p.from_target(&wire::status(4, FX_OK, "")).unwrap();
    let r = &done(&out)[0];
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(r.bytes, 100);
}

#[test]
fn a_direct_upload_is_logged_and_a_failed_write_fails_it() {
    let mut p = Proxy::new(UploadMode::Direct, DownloadMode::Allow(None));
    let out = p
        .from_vendor(&open(1, "/tmp/up", FXF_WRITE | FXF_CREAT | FXF_TRUNC))
        .unwrap();
    assert_eq!(targets(&out).len(), 1);
    p.from_target(&wire::handle(1, b"w")).unwrap();
    p.from_vendor(&wire::write(2, b"w", 0, b"abc")).unwrap();
    p.from_vendor(&wire::write(3, b"w", 3, b"def")).unwrap();
    p.from_target(&wire::status(2, FX_OK, "")).unwrap();
    p.from_target(&wire::status(3, FX_OK, "")).unwrap();
    p.from_vendor(&wire::close(4, b"w")).unwrap();
    let r = done(&p.from_target(&wire::status(4, FX_OK, "")).unwrap())[0].clone();
    assert_eq!(r.direction, Direction::Upload);
    assert_eq!(r.sha256, Some(sha(b"abcdef")));

    p.from_vendor(&open(5, "/full/x", FXF_WRITE | FXF_CREAT))
        .unwrap();
    p.from_target(&wire::handle(5, b"x")).unwrap();
    p.from_vendor(&wire::write(6, b"x", 0, b"abc")).unwrap();
    p.from_target(&wire::status(6, FX_FAILURE, "No space left on device"))
        .unwrap();
    let left = p.finish();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].outcome, Outcome::Failed);
    assert_eq!(left[0].detail.as_deref(), Some("No space left on device"));
}

#[test]
fn in_quarantine_the_gateway_answers_the_upload_and_the_target_sees_nothing_until_the_close() {
    let mut p = Proxy::new(UploadMode::Quarantine, DownloadMode::Allow(None));
    let out = p
        .from_vendor(&open(1, "/tmp/up", FXF_WRITE | FXF_CREAT | FXF_TRUNC))
        .unwrap();
    assert!(targets(&out).is_empty());
    let Some(Out::StageOpen {
        id: 1,
        handle,
        path,
        ..
    }) = out.first()
    else {
        panic!("{out:?}");
    };
    assert_eq!(path, "/tmp/up");
    let handle = handle.clone();
    let out = p.from_vendor(&wire::write(2, &handle, 0, b"abc")).unwrap();
    assert_eq!(
        out,
        [Out::StageWrite {
            id: 2,
            handle: handle.clone(),
            offset: 0,
            data: b"abc".to_vec()
        }]
    );
    let out = p.from_vendor(&wire::close(3, &handle)).unwrap();
    assert_eq!(
        out,
        [Out::StageClose {
            id: 3,
            handle: handle.clone()
        }]
    );
    // The gateway's own requests: their replies are not the vendor's.
    let id = p.internal_id();
    assert!(id >= INTERNAL_IDS);
    let out = p.from_target(&wire::handle(id, b"t")).unwrap();
    assert_eq!(out, [Out::Internal(id, wire::handle(id, b"t"))]);
    // Resuming or appending cannot be scanned.
    let out = p
        .from_vendor(&open(4, "/tmp/up", FXF_WRITE | FXF_APPEND))
        .unwrap();
    assert!(targets(&out).is_empty());
    assert_eq!(be32(&vendor(&out)[0][9..13]), FX_OP_UNSUPPORTED);
}

#[test]
fn a_vendor_request_cannot_take_a_pending_gateway_id() {
    let mut p = Proxy::new(UploadMode::Quarantine, DownloadMode::Allow(None));
    let id = p.internal_id();
    let out = p.from_vendor(&open(id, "/etc/hosts", FXF_READ)).unwrap();
    assert!(targets(&out).is_empty());
    assert_eq!(be32(&vendor(&out)[0][9..13]), FX_FAILURE);
}
